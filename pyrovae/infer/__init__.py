"""Inference: the SVI trainer (alone or data-parallel) and its hooks, its numerical guard,
checkpoints, loggers and evaluation. The loop is :func:`pyrovae.infer.train.train`;
``pyrovae.fit`` (:mod:`pyrovae.runs`) adds the run folder."""

from .callbacks import Callback, LearningRateDecay, ScaleLatentsMessenger
from .evaluation import evaluate, log_weights
from .guard import NonFiniteError
from .loggers import Logger, TensorBoardLogger
from .options import Options
from .step import make_step
from .train import default_elbo, scale_latents

__all__ = [
    "Callback",
    "LearningRateDecay",
    "Logger",
    "NonFiniteError",
    "TensorBoardLogger",
    "default_elbo",
    "evaluate",
    "log_weights",
    "make_step",
    "Options",
    "ScaleLatentsMessenger",
    "scale_latents",
]
