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
code when unpickled) is refused before anything in it runs. It also carries ``checksum``, the
SHA-256 of its content (:func:`digest`), and :func:`load` checks every field's type, the
checksum, that the weights are finite and, when given the model, their names, shapes and
dtypes; :func:`restore` checks the optimizer state against the optimizer, and each hook's
state with the hook's own ``check_state`` (:func:`check_hook_states`), before using any.
Each refusal is one ``ValueError`` line naming the first problem.
"""

import errno
import hashlib
import io
import math
import os
import pickle
import random
import re
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyro
import torch

FORMAT = "pyrovae-checkpoint-3"  # 2: RNG states as tensors and plain values; 3: a checksum
FIELDS = ("model_class", "model", "param_store", "optimizer", "rng", "epoch", "history", "checksum")


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
            if store[name].shape != value.shape or store[name].dtype != value.dtype:
                raise ValueError(
                    f"the checkpoint's pyro.param {name} is {tuple(value.shape)} {value.dtype}, "
                    f"this model's {tuple(store[name].shape)} {store[name].dtype}: it was "
                    "written by another model; use the run's options or a new --out folder"
                )
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


def digest(value: Any) -> str:
    """SHA-256 (hex) of a checkpoint's content, walked in its own order: each dict key, each
    tensor's dtype, shape and bytes, each plain value's type and ``repr``. Any changed byte of a
    weight, and any changed value, changes it."""
    h = hashlib.sha256()
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if torch.is_tensor(item):
            t = item.detach().cpu().contiguous()
            h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
        elif isinstance(item, dict):
            h.update(f"D{len(item)}".encode())
            for key, v in reversed(item.items()):
                stack += [v, key]
        elif isinstance(item, list | tuple):
            h.update(f"{type(item).__name__[0]}{len(item)}".encode())
            stack += reversed(item)
        else:
            h.update(f"{type(item).__name__}:{item!r};".encode())
    return h.hexdigest()


def sealed(state: Mapping[str, Any]) -> Checkpoint:
    """``state`` with its ``checksum`` (:func:`digest`), as the run folder writes it."""
    content = {k: v for k, v in state.items() if k != "checksum"}
    return {**content, "checksum": digest(content)}


def read_bytes(path: str | os.PathLike[str]) -> bytes | None:
    """The bytes of the regular file ``path`` (``None`` when there is none), opened without
    following a symbolic link: a link planted in a run folder is refused (``ValueError``)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        return None
    except OSError as err:
        if err.errno == errno.ELOOP or os.path.islink(path):
            raise ValueError(
                f"{path} is a symbolic link; pyrovae follows no link in a run folder: remove it"
            ) from None
        raise ValueError(f"cannot read {path} ({err.strerror})") from None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise ValueError(f"{path} is not a regular file; remove it")
        return f.read()


def load(
    path: str | os.PathLike[str],
    model: torch.nn.Module | None = None,
    data: bytes | None = None,
) -> Checkpoint:
    """Read the checkpoint ``path`` (or its bytes ``data``, read by :func:`read_bytes`) with
    ``torch.load(weights_only=True)`` and check it: the format, every field's type, the
    checksum, finite weights and, when ``model`` is given, that it belongs to ``model``; raise
    ``ValueError`` (one line naming the first problem) if not. Nothing in a refused file is
    executed."""
    path = Path(path)
    if data is None:
        data = read_bytes(path)
        if data is None:
            raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
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
    problem = f"lacks {', '.join(missing)}" if missing else _problem(state)
    if problem:
        if not missing and problem != "has fields of the wrong type":
            problem = f"has fields of the wrong type ({problem})"
        raise ValueError(
            f"checkpoint {path} {problem}: it was not written whole by pyrovae; delete it or "
            "train into a new --out folder"
        )
    if state["checksum"] != digest({k: v for k, v in state.items() if k != "checksum"}):
        raise ValueError(
            f"{path} is corrupt: checksum mismatch (its bytes changed after pyrovae wrote it); "
            "delete it or train into a new --out folder"
        )
    for where, tensors in (("model", state["model"]), ("param_store", state["param_store"])):
        for name, t in tensors.items():
            if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                raise ValueError(
                    f"checkpoint {path} holds non-finite weights ({where} {name}): the run "
                    "diverged before it was saved; retrain with a lower lr into a new --out folder"
                )
    if model is not None:
        check_model(path, state, model)
    return state


def _unreadable(path: Path, err: BaseException) -> str:
    first = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return (
        f"cannot read checkpoint {path} ({type(err).__name__}: {first[:200]}); it is truncated "
        "or not a pyrovae checkpoint: delete it or train into a new --out folder"
    )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _tensors(value: object) -> bool:
    return isinstance(value, dict) and all(
        isinstance(k, str) and torch.is_tensor(v) for k, v in value.items()
    )


def _problem(state: Checkpoint) -> str | None:
    """The first field of ``state`` whose type or form is wrong (``None``: all are right)."""
    if not (
        _tensors(state["model"])
        and _tensors(state["param_store"])
        and isinstance(state["model_class"], str)
        and isinstance(state["optimizer"], dict)
        and _is_int(state["epoch"])
        and state["epoch"] >= 0
        and isinstance(state["history"], dict)
        and isinstance(state["rng"], dict)
        and {"torch", "numpy", "random"} <= set(state["rng"])
        and isinstance(state["checksum"], str)
    ):
        return "has fields of the wrong type"
    optimizer = state["optimizer"]
    if not (
        isinstance(optimizer.get("state"), dict)
        and isinstance(optimizer.get("param_groups"), list)
        and optimizer["param_groups"]
        and all(
            isinstance(g, dict)
            and isinstance(g.get("params"), list)
            and all(_is_int(i) for i in g["params"])
            for g in optimizer["param_groups"]
        )
        and all(_is_int(k) and isinstance(v, dict) for k, v in optimizer["state"].items())
    ):
        return "optimizer: not an optimizer's state_dict (state, param_groups)"
    history, epoch = state["history"], state["epoch"]
    epochs = history.get("epoch")
    if not (
        isinstance(epochs, list)
        and all(_is_int(e) for e in epochs)
        and (epochs[-1] if epochs else 0) == epoch
        and all(isinstance(v, list) and len(v) == len(epochs) for v in history.values())
    ):
        return f"history: not the per-epoch lists of {epoch} epoch(s)"
    config = state.get("config")
    if config is not None and not (
        isinstance(config, dict) and all(isinstance(k, str) for k in config)
    ):
        return "config: not a mapping of option names to values"
    world_size = state.get("world_size", 1)
    if not (_is_int(world_size) and world_size >= 1):
        return "world_size: not a positive integer"
    rngs = state.get("rng_by_rank", [state["rng"]])
    if not (isinstance(rngs, list) and len(rngs) in (1, world_size)):
        return "rng_by_rank: not one RNG state per process"
    for rng in rngs:
        problem = _rng_problem(rng)
        if problem:
            return f"rng: {problem}"
    return None


def _rng_problem(rng: object) -> str | None:
    """What is wrong with an RNG state (:func:`rng_state`), or ``None``."""
    if not isinstance(rng, dict):
        return "not a mapping"
    t = rng.get("torch")
    size = torch.get_rng_state().shape
    if not (torch.is_tensor(t) and t.dtype == torch.uint8 and t.shape == size):
        return f"torch: not a uint8 tensor of shape {tuple(size)}"
    cuda = rng.get("cuda", [])
    if not (
        isinstance(cuda, list) and all(torch.is_tensor(c) and c.dtype == torch.uint8 for c in cuda)
    ):
        return "cuda: not a list of uint8 tensors"
    n = rng.get("numpy")
    if not (
        isinstance(n, dict)
        and n.get("name") == "MT19937"
        and torch.is_tensor(n.get("keys"))
        and n["keys"].dtype == torch.int64
        and tuple(n["keys"].shape) == (624,)
        and _is_int(n.get("pos"))
        and 0 <= n["pos"] <= 624
        and n.get("has_gauss") in (0, 1)
        and isinstance(n.get("cached_gaussian"), float)
    ):
        return "numpy: not an MT19937 state"
    r = rng.get("random")
    if not (
        isinstance(r, list | tuple)
        and len(r) == 3
        and r[0] == 3
        and isinstance(r[1], list | tuple)
        and len(r[1]) == 625
        and all(_is_int(v) and 0 <= v < 2**32 for v in r[1][:624])
        and _is_int(r[1][624])
        and 0 <= r[1][624] <= 624
        and (r[2] is None or isinstance(r[2], float))
    ):
        return "random: not a version-3 Mersenne Twister state"
    return None


def check_model(path: str | os.PathLike[str], state: Checkpoint, model: torch.nn.Module) -> None:
    """Refuse (``ValueError``) a checkpoint ``state`` whose class, names, shapes or dtypes are
    not ``model``'s."""
    ours = {k: (tuple(v.shape), v.dtype) for k, v in model.state_dict().items()}
    theirs = {k: (tuple(v.shape), v.dtype) for k, v in state["model"].items()}
    if state["model_class"] != type(model).__name__ or ours != theirs:
        diff = sorted(
            (
                (k, shape, str(dtype).removeprefix("torch."))
                for k, (shape, dtype) in set(ours.items()) ^ set(theirs.items())
            ),
            key=str,
        )[:3]
        raise ValueError(
            f"checkpoint {path} was written by a different model ({state['model_class']}; "
            f"first differences: {diff}); use the options it was trained with or a new --out folder"
        )


def check_optimizer(saved: Mapping[str, Any], optimizer: torch.optim.Optimizer) -> None:
    """Refuse (``ValueError``, one line naming the first mismatch) an optimizer ``state_dict``
    ``saved`` that is not one of ``optimizer``: its groups, their parameters and options, and
    each state tensor: a 0-d ``step`` or a tensor of its parameter's shape and dtype."""
    ours = optimizer.state_dict()
    groups = saved["param_groups"]
    if len(groups) != len(ours["param_groups"]):
        raise ValueError(
            f"the checkpoint's optimizer has {len(groups)} parameter group(s), this run's "
            f"{len(ours['param_groups'])}: it was written by another run; use a new --out folder"
        )
    params: dict[Any, torch.Tensor] = {}
    for g, (mine, theirs, group) in enumerate(
        zip(ours["param_groups"], groups, optimizer.param_groups, strict=True)
    ):
        if theirs["params"] != mine["params"] or set(theirs) != set(mine):
            raise ValueError(
                f"the checkpoint's optimizer group {g} holds other parameters or options than "
                "this run's: it was written by another run; use a new --out folder"
            )
        for key in mine:
            if key != "params" and not _same_kind(mine[key], theirs[key]):
                raise ValueError(
                    f"the checkpoint's optimizer option {key} is {theirs[key]!r}, not a value "
                    f"like {mine[key]!r}: the checkpoint is damaged; use a new --out folder"
                )
        params.update(zip(mine["params"], group["params"], strict=True))
    for index, entry in saved["state"].items():
        if index not in params:
            raise ValueError(
                f"the checkpoint's optimizer holds a state for parameter {index}, which this "
                "run does not have: it was written by another run; use a new --out folder"
            )
        p = params[index]
        for key, value in entry.items():
            shape, dtype = ((), None) if key == "step" else (tuple(p.shape), p.dtype)
            ok = torch.is_tensor(value) and tuple(value.shape) == shape
            ok = ok and (value.dtype == dtype if dtype else value.is_floating_point())
            if not ok:
                found = (
                    f"{tuple(value.shape)} {str(value.dtype).removeprefix('torch.')}"
                    if torch.is_tensor(value)
                    else type(value).__name__
                )
                raise ValueError(
                    f"the checkpoint's optimizer state {key} of parameter {index} is {found}, "
                    f"not {shape} {str(dtype or 'float').removeprefix('torch.')}: it does not "
                    "belong to this model; use a new --out folder"
                )


def state_dict_problem(saved: object, model: torch.nn.Module) -> str | None:
    """What makes ``saved`` not a ``state_dict`` of ``model`` — the first name missing or
    extra, tensor of another shape or dtype, or non-finite float tensor — or ``None``."""
    if not _tensors(saved):
        return "is not a mapping of names to tensors"
    assert isinstance(saved, dict)  # (_tensors)
    ours = model.state_dict()
    odd = sorted(set(ours) ^ set(saved))
    if odd:
        return f"{'lacks' if odd[0] in ours else 'has an extra'} tensor {odd[0]}"
    for name, t in saved.items():
        mine = ours[name]
        if t.shape != mine.shape or t.dtype != mine.dtype:
            return (
                f"holds {name} as {tuple(t.shape)} {str(t.dtype).removeprefix('torch.')}, not "
                f"{tuple(mine.shape)} {str(mine.dtype).removeprefix('torch.')}"
            )
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            return f"holds non-finite values in {name}"
    return None


def check_hook_states(state: Checkpoint, model: torch.nn.Module, hooks: Iterable[object]) -> None:
    """Refuse (``ValueError``, one line) a checkpoint whose state of a hook (a callback with a
    ``state_key``, :class:`pyrovae.infer.callbacks.Stateful`) that hook's ``check_state(value,
    state, model)`` finds wrong: it returns the first problem, or ``None``. The hook knows its
    state's form; a hook without ``check_state`` is trusted with its value."""
    for hook in hooks:
        key = getattr(hook, "state_key", None)
        check = getattr(hook, "check_state", None)
        if key is None or check is None or key not in state:
            continue
        problem = check(state[key], state, model)
        if problem:
            raise ValueError(
                f"the checkpoint's {type(hook).__name__} state ({key!r}) {problem}: it was not "
                "written by this run; delete the checkpoint or use a new --out folder"
            )


def _same_kind(a: object, b: object) -> bool:
    if isinstance(a, list | tuple):
        return (
            isinstance(b, list | tuple)
            and len(a) == len(b)
            and all(_same_kind(x, y) for x, y in zip(a, b, strict=True))
        )
    if isinstance(a, bool) or a is None or isinstance(a, str):
        return type(a) is type(b)
    if isinstance(a, int | float):
        return isinstance(b, int | float) and not isinstance(b, bool) and math.isfinite(b)
    return torch.is_tensor(a) == torch.is_tensor(b)


def restore(
    state: Checkpoint,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    rank: int = 0,
    hooks: Iterable[object] = (),
) -> None:
    """Put a loaded checkpoint's numbers back in place (the optimizer keeps its tensors), after
    checking the optimizer state against ``optimizer`` (:func:`check_optimizer`) and the states
    of ``hooks`` with their own checks (:func:`check_hook_states`; the caller then loads those
    states into the hooks); ``rank`` picks this process's RNG state in a distributed run's
    checkpoint."""
    check_optimizer(state["optimizer"], optimizer)
    check_hook_states(state, model, hooks)
    model.load_state_dict(state["model"])
    load_param_store(state["param_store"])
    optimizer.load_state_dict(state["optimizer"])
    set_rng_state(state.get("rng_by_rank", [state["rng"]])[rank])
