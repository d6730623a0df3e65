"""Checkpoints: everything needed to continue a run exactly, written atomically.

A checkpoint holds the model's ``state_dict``, the values of any ``pyro.param`` sites, the
optimizer state, the torch/numpy/random RNG states, the last finished epoch and the history.
It is written to a temporary file in the same folder and renamed over the old one, so a crash
never leaves a half-written checkpoint.
"""

import os
import random
import tempfile
from pathlib import Path

import numpy as np
import pyro
import torch

FORMAT = "pyrovae-checkpoint-1"


def rng_state():
    return {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),  # noqa: NPY002 (the global state users seed)
        "random": random.getstate(),
    }


def set_rng_state(state):
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])  # noqa: NPY002
    random.setstate(state["random"])


def param_store_state(model):
    """Values of ``pyro.param`` sites that are not parameters of ``model`` itself."""
    own = {id(p) for p in model.parameters()}
    store = pyro.get_param_store().named_parameters()
    return {name: p.detach().clone() for name, p in store if id(p) not in own}


def save(path, model, optimizer, epoch, history, extra=None):
    """Write the checkpoint to ``path`` atomically (temp file in the same folder + rename)."""
    path = Path(path)
    state = {
        "format": FORMAT,
        "model_class": type(model).__name__,
        "model": model.state_dict(),
        "param_store": param_store_state(model),
        "optimizer": optimizer.state_dict(),
        "rng": rng_state(),
        "epoch": epoch,
        "history": history,
        **(extra or {}),
    }
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load(path, model):
    """Read a checkpoint and check that it belongs to ``model``; raise ``ValueError`` if not."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:
        raise ValueError(
            f"cannot read checkpoint {path} ({type(err).__name__}: {err}); it is truncated or "
            "not a pyrovae checkpoint: delete it or train into a new --out folder"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{path} is not a pyrovae checkpoint; train into a new --out folder")
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    theirs = {k: tuple(v.shape) for k, v in state["model"].items()}
    if state["model_class"] != type(model).__name__ or ours != theirs:
        diff = sorted(set(ours.items()) ^ set(theirs.items()))[:3]
        raise ValueError(
            f"checkpoint {path} was written by a different model ({state['model_class']}; "
            f"first differences: {diff}); use the options it was trained with or a new --out folder"
        )
    return state


def restore(state, model, optimizer):
    """Put a loaded checkpoint's numbers back in place (the optimizer keeps its tensors)."""
    model.load_state_dict(state["model"])
    store = dict(pyro.get_param_store().named_parameters())
    with torch.no_grad():
        for name, value in state["param_store"].items():
            if name in store:
                store[name].copy_(value)
    optimizer.load_state_dict(state["optimizer"])
    set_rng_state(state["rng"])
