"""Ctrl-C while the command ``pyrovae`` (or ``python -m pyrovae``) is still importing its
libraries (torch, Pyro: seconds): one line and exit code 130, not an import traceback.
Imported first by ``pyrovae/__init__.py``; it acts only when the command itself is starting,
never in a program that imports pyrovae, and ``cli.main`` then takes over."""

import os
import signal
import sys
from types import FrameType
from typing import NoReturn


def _interrupted_while_starting(signum: int, frame: FrameType | None) -> NoReturn:
    """One line and exit code 130 (see the module docstring)."""
    print("pyrovae: interrupted while starting; nothing was written", file=sys.stderr)
    raise SystemExit(130)


_argv = sys.orig_argv  # the interpreter's own command line: python -m pyrovae …
if ["-m", "pyrovae"] in [_argv[i : i + 2] for i in range(len(_argv))] or os.path.basename(
    sys.argv[0] if sys.argv else ""
) in ("pyrovae", "pyrovae.exe"):  # the command starting, not a program that imports pyrovae
    try:
        signal.signal(signal.SIGINT, _interrupted_while_starting)
    except ValueError:  # not the main thread: leave Python's handler
        pass
