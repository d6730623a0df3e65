"""Inference: the SVI trainer, checkpoints and evaluation."""

from .evaluate import evaluate, log_weights
from .train import default_elbo, fit, scale_latents

__all__ = ["default_elbo", "evaluate", "fit", "log_weights", "scale_latents"]
