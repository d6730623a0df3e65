"""pyrovae: variational latent-variable models as Pyro model/guide pairs."""

import os as _os
import signal as _signal
import sys as _sys
from types import FrameType as _FrameType
from typing import NoReturn as _NoReturn


def _interrupted_while_starting(signum: int, frame: _FrameType | None) -> _NoReturn:
    """Ctrl-C while the command ``pyrovae`` (or ``python -m pyrovae``) imports its libraries:
    one line and exit code 130, not an import traceback (``cli.main`` then takes over)."""
    print("pyrovae: interrupted while starting; nothing was written", file=_sys.stderr)
    raise SystemExit(130)


_argv = _sys.orig_argv  # the interpreter's own command line: python -m pyrovae …
if ["-m", "pyrovae"] in [_argv[i : i + 2] for i in range(len(_argv))] or _os.path.basename(
    _sys.argv[0] if _sys.argv else ""
) in ("pyrovae", "pyrovae.exe"):  # the command starting, not a program that imports pyrovae
    try:
        _signal.signal(_signal.SIGINT, _interrupted_while_starting)
    except ValueError:  # not the main thread: leave Python's handler
        pass

from . import data, distributions, models, parts  # noqa: E402 (after the Ctrl-C handler)
from .infer import evaluate  # noqa: E402 (after the Ctrl-C handler)
from .models import (  # noqa: E402 (after the Ctrl-C handler)
    VAE,
    ConditionalVAE,
    GaussianMixture,
    MixtureOfLinearDecoders,
    SemiSupervisedVAE,
)
from .runs import fit, load, load_config  # noqa: E402 (after the Ctrl-C handler)

__all__ = [
    "VAE",
    "ConditionalVAE",
    "GaussianMixture",
    "MixtureOfLinearDecoders",
    "SemiSupervisedVAE",
    "data",
    "distributions",
    "evaluate",
    "fit",
    "load",
    "load_config",
    "models",
    "parts",
]
__version__ = "0.1.0"
