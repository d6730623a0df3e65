"""Inference: the SVI trainer, checkpoints and evaluation."""

from .train import default_elbo, fit, scale_latents

__all__ = ["default_elbo", "fit", "scale_latents"]
