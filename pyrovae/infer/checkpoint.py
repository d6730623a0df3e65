"""Checkpoints: everything needed to continue a run exactly, written atomically, read safely.

A checkpoint holds the model's ``state_dict``, the values of any ``pyro.param`` sites, the
optimizer state, the torch/numpy/random RNG states, the last finished epoch and the history.
The run folder (:class:`pyrovae.runs.RunFolder`) writes it atomically (a temporary file in
the same folder, fsynced and renamed over the old one), so a process killed at any moment
leaves either the previous complete checkpoint or the new one, never a mixture. A distributed
run stores the RNG states of all its ranks (``rng_by_rank``) and its ``world_size``.

Everything in a checkpoint is a tensor or a plain value (numbers, text, lists, tuples, dicts;
numpy's RNG state is stored as a tensor and plain numbers), so :func:`load` reads it with
``torch.load(weights_only=True)``: a file carrying any other pickled object (which could run
code when unpickled) is refused before anything in it runs.
"""

import os
import pickle
import random
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyro
import torch

FORMAT = "pyrovae-checkpoint-2"  # 2: RNG states as tensors and plain values (weights_only)
FIELDS = ("model_class", "model", "param_store", "optimizer", "rng", "epoch", "history")


Checkpoint = dict[str, Any]
"""A checkpoint: tensors and plain values by field (:data:`FIELDS`)."""


def rng_state() -> dict[str, Any]:
    """torch's, numpy's and Python's global RNG states as tensors and plain values (and the
    CUDA generators' when CUDA is in use, so that a GPU run resumes exactly on a GPU)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002 (users seed it)
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    return {
        **({"cuda": cuda} if cuda else {}),
        "torch": torch.get_rng_state(),
        "numpy": {
            "name": str(name),
            # numpy's stubs allow get_state() a dict; with legacy=True (the default) it is a tuple
            "keys": torch.from_numpy(keys.astype(np.int64)),  # type: ignore[attr-defined]
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "random": random.getstate(),
    }


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Undo :func:`rng_state`: put the global RNG states back (the CUDA ones when this machine
    has as many GPUs; a run moved to another device continues with its own CUDA noise)."""
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda")
    if cuda and torch.cuda.is_available() and torch.cuda.device_count() == len(cuda):
        torch.cuda.set_rng_state_all(cuda)
    n = state["numpy"]
    keys = n["keys"].numpy().astype(np.uint32)
    np.random.set_state((n["name"], keys, n["pos"], n["has_gauss"], n["cached_gaussian"]))  # noqa: NPY002
    random.setstate(_tuples(state["random"]))


def _tuples(value: Any) -> Any:
    """``random.setstate`` wants nested tuples; a round trip may give lists."""
    return tuple(_tuples(v) for v in value) if isinstance(value, list | tuple) else value


def param_store_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Values of ``pyro.param`` sites that are not parameters of ``model`` itself."""
    own = {id(p) for p in model.parameters()}
    store = pyro.get_param_store().named_parameters()
    return {name: p.detach().clone() for name, p in store if id(p) not in own}


@torch.no_grad()
def load_param_store(values: Mapping[str, torch.Tensor]) -> None:
    """Copy checkpointed ``pyro.param`` values (:func:`param_store_state`) into the sites of
    Pyro's param store that exist now (those a first call of the guide has made)."""
    store = dict(pyro.get_param_store().named_parameters())
    for name, value in values.items():
        if name in store:
            store[name].copy_(value)


def state(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    epoch: int,
    history: Mapping[str, Any],
    extra: Mapping[str, Any] | None = None,
) -> Checkpoint:
    """The checkpoint of a run after ``epoch`` epochs: a dict of tensors and plain values
    (written by the run folder, :class:`pyrovae.runs.RunFolder`; read by :func:`load`)."""
    return {
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


def load(path: str | os.PathLike[str], model: torch.nn.Module | None = None) -> Checkpoint:
    """Read a checkpoint with ``torch.load(weights_only=True)`` and check its fields, and, when
    ``model`` is given, that it belongs to ``model``; raise ``ValueError`` (one line) if not.
    Nothing in a refused file is executed."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"GLOBAL (\S+)", str(err))
        if found is None:
            raise ValueError(_unreadable(path, err)) from None
        raise ValueError(
            f"checkpoint {path} holds a pickled {found.group(1)}, not only tensors and plain "
            "values: loading it could run code, so it was refused unloaded (pyrovae "
            "checkpoints hold none; an older pyrovae's do: retrain); train into a new --out folder"
        ) from None
    except Exception as err:
        raise ValueError(_unreadable(path, err)) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        found = state.get("format") if isinstance(state, dict) else None
        older = (
            f" (format {found!r}: an older pyrovae's; retrain)" if isinstance(found, str) else ""
        )
        raise ValueError(
            f"{path} is not a pyrovae checkpoint{older}; train into a new --out folder"
        )
    missing = [k for k in FIELDS if k not in state]
    if missing or not _well_formed(state):
        what = f"lacks {', '.join(missing)}" if missing else "has fields of the wrong type"
        raise ValueError(
            f"checkpoint {path} {what}: it was not written whole by pyrovae; delete it or "
            "train into a new --out folder"
        )
    if model is not None:
        check_model(path, state, model)
    return state


def _unreadable(path: Path, err: BaseException) -> str:
    first = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return (
        f"cannot read checkpoint {path} ({type(err).__name__}: {first}); it is truncated or "
        "not a pyrovae checkpoint: delete it or train into a new --out folder"
    )


def _well_formed(state: Checkpoint) -> bool:
    tensors = (state["model"], state["param_store"])
    rng = state["rng"]
    return (
        all(isinstance(d, dict) and all(torch.is_tensor(v) for v in d.values()) for d in tensors)
        and isinstance(state["model_class"], str)
        and isinstance(state["optimizer"], dict)
        and isinstance(state["epoch"], int)
        and state["epoch"] >= 0
        and isinstance(state["history"], dict)
        and isinstance(rng, dict)
        and {"torch", "numpy", "random"} <= set(rng)
    )


def check_model(path: str | os.PathLike[str], state: Checkpoint, model: torch.nn.Module) -> None:
    """Refuse (``ValueError``) a checkpoint ``state`` whose class or shapes are not ``model``'s."""
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    theirs = {k: tuple(v.shape) for k, v in state["model"].items()}
    if state["model_class"] != type(model).__name__ or ours != theirs:
        diff = sorted(set(ours.items()) ^ set(theirs.items()))[:3]
        raise ValueError(
            f"checkpoint {path} was written by a different model ({state['model_class']}; "
            f"first differences: {diff}); use the options it was trained with or a new --out folder"
        )


def restore(
    state: Checkpoint, model: torch.nn.Module, optimizer: torch.optim.Optimizer, rank: int = 0
) -> None:
    """Put a loaded checkpoint's numbers back in place (the optimizer keeps its tensors);
    ``rank`` picks this process's RNG state in a distributed run's checkpoint."""
    model.load_state_dict(state["model"])
    load_param_store(state["param_store"])
    optimizer.load_state_dict(state["optimizer"])
    set_rng_state(state.get("rng_by_rank", [state["rng"]])[rank])
