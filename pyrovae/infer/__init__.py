"""Inference: the SVI trainer (alone or data-parallel) and its hooks, its numerical guard,
checkpoints, loggers and evaluation."""

from .callbacks import Callback, LearningRateDecay, ScaleLatentsMessenger
from .evaluation import evaluate, log_weights
from .guard import NonFiniteError
from .loggers import Logger, TensorBoardLogger
from .train import default_elbo, fit, scale_latents

__all__ = [
    "Callback",
    "LearningRateDecay",
    "Logger",
    "NonFiniteError",
    "TensorBoardLogger",
    "default_elbo",
    "evaluate",
    "fit",
    "log_weights",
    "ScaleLatentsMessenger",
    "scale_latents",
]
