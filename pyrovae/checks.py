"""Argument checks: one home for each rule, used by the models, the parts, the trainer and the
config.

Every check takes the argument's ``name`` (as the user wrote it: ``"latent_dim"``) and its
``value``, returns the value when it is acceptable and otherwise raises ``ValueError`` saying
what the argument accepts and what it got, e.g. ``latent_dim must be a positive integer, got
0``. Booleans are never numbers here (``True`` is not a size), following scikit-learn's
"no silent coercion".
"""

import math
from collections.abc import Iterable
from typing import Any, TypeGuard

import torch

SEED_BOUND = 2**32  # numpy's seed range, which pyro.set_rng_seed also seeds


def is_int(value: object) -> TypeGuard[int]:
    """``True`` for a Python or numpy integer, not for ``bool``."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_real(value: object) -> TypeGuard[int | float]:
    """``True`` for an int or a float (``nan`` and ``inf`` included), not for ``bool``."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def positive_int(name: str, value: Any, optional: bool = False) -> Any:
    """An integer ≥ 1 (or ``None`` when ``optional``)."""
    if optional and value is None:
        return value
    if not (is_int(value) and value >= 1):
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def int_at_least(name: str, value: Any, low: int) -> Any:
    """An integer ≥ ``low``."""
    if not (is_int(value) and value >= low):
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return value


def nonnegative_int(name: str, value: Any) -> Any:
    """An integer ≥ 0."""
    if not (is_int(value) and value >= 0):
        raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
    return value


def positive_real(name: str, value: Any, learned: bool = False) -> Any:
    """A finite number > 0; with ``learned``, the text ``"learned"`` is accepted as well."""
    if learned and value == "learned":
        return value
    if not (is_real(value) and 0 < value < math.inf):
        also = " or 'learned'" if learned else ""
        raise ValueError(f"{name} must be a positive number{also}, got {value!r}")
    return value


def nonnegative_real(name: str, value: Any) -> Any:
    """A finite number ≥ 0."""
    if not (is_real(value) and 0 <= value < math.inf):
        raise ValueError(f"{name} must be a number >= 0, got {value!r}")
    return value


def seed(name: str, value: Any) -> Any:
    """An integer in [0, 2**32): what torch, numpy and random all accept."""
    if not (is_int(value) and 0 <= value < SEED_BOUND):
        raise ValueError(f"{name} must be an integer in [0, 2**32), got {value!r}")
    return value


def one_of(name: str, value: Any, allowed: Iterable[object]) -> Any:
    """One of ``allowed`` (``None`` in ``allowed`` means "may be unset", not listed)."""
    if value not in allowed:
        known = ", ".join(str(a) for a in allowed if a is not None)
        raise ValueError(f"{name} must be one of {known}, got {value!r}")
    return value


def sizes(name: str, value: Any, empty: bool = False) -> Any:
    """A list (or tuple) of positive integers, e.g. hidden layer sizes; non-empty unless
    ``empty``."""
    if not (
        isinstance(value, list | tuple)
        and (value or empty)
        and all(is_int(v) and v >= 1 for v in value)
    ):
        what = "a list" if empty else "a non-empty list"
        raise ValueError(f"{name} must be {what} of positive integers, got {value!r}")
    return value


def device_dtype(model: object) -> tuple[torch.device, torch.dtype]:
    """Device and dtype of ``model``'s first parameter: where its inputs must go. A model
    without parameters (or not a module) gets the CPU and torch's default dtype."""
    p = next(model.parameters(), None) if isinstance(model, torch.nn.Module) else None
    if p is None:
        return torch.device("cpu"), torch.get_default_dtype()
    return p.device, p.dtype


def check_matrix(x: Any, input_dim: int) -> None:
    """Raise ``ValueError`` unless ``x`` is a finite floating ``(N, input_dim)`` tensor, N ≥ 1."""
    if not torch.is_tensor(x) or not x.is_floating_point():
        raise ValueError(f"data must be a floating-point tensor, got {_describe(x)}")
    if x.dim() > 2:
        raise ValueError(
            f"data must have shape (N, {input_dim}), got images {tuple(x.shape)}; flatten them "
            f"to rows (x.reshape(len(x), -1)) and build the model with input_dim="
            f"{math.prod(x.shape[1:])}, or give a VAE input_dim={_image_shape(x)}"
        )
    if x.dim() != 2 or x.shape[1] != input_dim:
        raise ValueError(
            f"data must have shape (N, {input_dim}), got {tuple(x.shape)}; build the model "
            f"with input_dim={x.shape[-1] if x.dim() else '?'}"
        )
    if x.shape[0] == 0:
        raise ValueError("the data set is empty; pass at least one row")
    if not torch.isfinite(x).all():
        bad = (~torch.isfinite(x)).any(1).nonzero()[:5, 0].tolist()
        raise ValueError(f"data contain NaN or inf (rows {bad}...); clean or drop those rows")


def _image_shape(x: torch.Tensor) -> tuple[int, ...]:
    return (1, *x.shape[1:]) if x.dim() == 3 else tuple(x.shape[1:])


def _describe(x: object) -> str:
    return f"{type(x).__name__} of dtype {x.dtype}" if hasattr(x, "dtype") else type(x).__name__


MAX_NESTING = 32  # levels of lists and maps in a config value (a part spec needs 3 or 4)
MAX_ITEMS = 10_000  # entries of one list or map
MAX_LAYERS = 1_000  # entries of a ``hidden`` or ``channels`` list: layers of one network
MAX_ENTRIES = 1_000_000  # entries in all, a YAML alias counted each time it is used
LAYER_LISTS = ("hidden", "channels")


def config_shape(name: str, value: Any) -> Any:
    """``value`` (what a YAML or JSON reader made of a config entry) when its lists and maps are
    nested at most :data:`MAX_NESTING` deep and each holds at most :data:`MAX_ITEMS` entries,
    and each ``hidden`` or ``channels`` list (at any depth) at most :data:`MAX_LAYERS`, with
    at most :data:`MAX_ENTRIES` entries in all; otherwise ``ValueError`` naming where
    (``name.key[index]…``).

    Walks the value with an explicit stack, so a value nested too deep for Python's recursion
    (or a YAML alias that contains itself) is refused, not a ``RecursionError`` or a hang, and
    counts the entries it visits, so aliases of aliases (the "billion laughs") stop at
    :data:`MAX_ENTRIES`: the work is bounded by the limits, not by the value.
    """
    stack, seen = [(name, value, 0)], 0
    while stack:
        where, item, depth = stack.pop()
        seen += 1
        if seen > MAX_ENTRIES:
            raise ValueError(
                f"{name} holds more than {MAX_ENTRIES} entries in all (YAML aliases counted each "
                "time they are used); write it out smaller"
            )
        if not isinstance(item, list | tuple | dict):
            continue
        if depth >= MAX_NESTING:
            raise ValueError(
                f"{name} is nested more than {MAX_NESTING} levels deep (at {where}); a part "
                "spec needs 3 or 4: flatten it"
            )
        key = where.rsplit(".", 1)[-1]
        if key in LAYER_LISTS and isinstance(item, list | tuple) and len(item) > MAX_LAYERS:
            raise ValueError(
                f"{where} lists {len(item)} layers, more than {MAX_LAYERS}; give the sizes of "
                f"at most {MAX_LAYERS} layers"
            )
        if len(item) > MAX_ITEMS:
            raise ValueError(
                f"{where} has {len(item)} entries, more than the {MAX_ITEMS} a config list or "
                "map may hold"
            )
        pairs = item.items() if isinstance(item, dict) else enumerate(item)
        for k, v in pairs:
            child = f"{where}.{k}" if isinstance(item, dict) else f"{where}[{k}]"
            stack.append((child, v, depth + 1))
    return value
