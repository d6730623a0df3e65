"""``script(fn)``: ``torch.jit.script(fn)`` without torch's deprecation warning.

The von Mises-Fisher's Bessel pass, sampler and κ-gradient are TorchScript functions: dozens of
small float64 operations each, run without Python in between, and recorded by
``torch.jit.trace`` as calls that keep their loops and branches (a traced training step replays
them correctly). ``torch.jit.script`` warns (``FutureWarning``) that it is deprecated in favour
of ``torch.compile``, which is no replacement here (minutes of compilation on a CPU, and no
traced step); the warning would be printed at every ``import pyrovae``, so it is silenced for
these definitions only.
"""

import warnings
from collections.abc import Callable
from typing import Any

import torch


def script(fn: Callable[..., Any]) -> Any:
    """``torch.jit.script(fn)`` with its deprecation warning silenced (module docstring)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*", category=FutureWarning)
        return torch.jit.script(fn)
