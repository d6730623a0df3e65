"""Inference: the SVI trainer (alone or data-parallel), its numerical guard, checkpoints and
evaluation."""

from .evaluate import evaluate, log_weights
from .guard import NonFiniteError
from .train import default_elbo, fit, scale_latents

__all__ = ["NonFiniteError", "default_elbo", "evaluate", "fit", "log_weights", "scale_latents"]
