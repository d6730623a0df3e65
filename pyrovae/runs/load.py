"""Reading a trained run back: :func:`load_config` and :func:`load` (``pyrovae.load``)."""

import os
from typing import Any

import torch

from ..data import Data
from ..infer import checkpoint as ckpt
from ..infer.device import resolve as resolve_device
from ..models.vae import VAE
from . import config as cfg
from .folder import CHECKPOINT, RunFolder


def load_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The config of the run folder ``path`` (a dict, as written): the one its checkpoint
    carries, else ``config.yaml``."""
    return RunFolder(path).trained_config()


def load(path: str | os.PathLike[str], device: str | torch.device | None = None) -> Any:
    """The trained model of the run folder ``path`` (written by ``fit(out=...)`` or ``pyrovae
    train``), with the parameters of its checkpoint, on ``device`` (default: the CPU; a run
    trained on a GPU loads anywhere). Its config is :func:`load_config`."""
    return load_model(RunFolder(path), device)[1]


def load_model(
    folder: RunFolder,
    device: str | torch.device | None = None,
    config: dict[str, Any] | None = None,
    data: Data | None = None,
) -> tuple[dict[str, Any], Any]:
    """``(config, model)`` of the :class:`RunFolder` ``folder``: the model built once from the
    resolved ``config`` (default: the folder's, resolved here) and given the checkpoint's
    parameters (the checkpoint read once). Runs written before ``config.yaml`` recorded
    ``input_dim`` read their data set (``data``, or loaded here) to learn it."""
    config = cfg.resolve(folder.trained_config()) if config is None else config
    input_dim = config["input_dim"]
    if input_dim is None:
        input_dim = (data if data is not None else cfg.load_data(config)).input_shape
    model = cfg.build_model(config, input_dim)
    state = folder.checkpoint()
    if state is None:
        raise FileNotFoundError(f"{folder.path} holds no {CHECKPOINT}: train into it first")
    ckpt.check_model(folder.path / CHECKPOINT, state, model)
    model.load_state_dict(state["model"])
    if isinstance(model, VAE) and not model.amortized:  # an autoguide: remake its parameters
        model.remake_autoguide()
        ckpt.load_param_store(state["param_store"])
    if device is not None:
        model.to(resolve_device(device))
    return config, model
