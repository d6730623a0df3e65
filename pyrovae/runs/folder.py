"""A run folder (``fit(out=DIR)``, ``pyrovae train --out DIR``): one :class:`RunFolder` object
per command owns its lock and reads and writes its files.

* ``config.yaml``: how the model was built and trained (every value used, no nulls);
* ``checkpoint.pt``: :mod:`pyrovae.infer.checkpoint`, carrying the config too;
* ``metrics.json``: the history of :func:`pyrovae.fit`, with ``stopped_because`` and
  ``best_epoch``.

Each file is read at most once per command (the object keeps what it read) and written only
through :func:`write_atomically`. ``config.yaml`` is written only with the checkpoint it
describes: an old one that would not describe the new checkpoint is removed before the
checkpoint's rename, the new one written right after it; so ``config.yaml`` never sits beside
a checkpoint it does not describe, and a run stopped before its first checkpoint leaves the
previous pair intact.
"""

import io
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import yaml

from ..infer import checkpoint as ckpt
from .lock import Lock

CONFIG, CHECKPOINT, METRICS, LOCK = "config.yaml", "checkpoint.pt", "metrics.json", ".lock"
_UNREAD = object()


def write_atomically(path: str | os.PathLike[str], data: str | bytes) -> None:
    """Write ``data`` (text or bytes) to ``path`` so that a reader, or the disk after a power
    cut, sees the old content or the new, never a part: a temporary file with a unique name in
    the same folder, flushed and fsynced, renamed over ``path`` (``os.replace``), then the
    folder fsynced so that the rename itself lasts."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # folders cannot be opened on some platforms (Windows)
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def config_text(config: Mapping[str, Any]) -> str:
    return yaml.safe_dump(config, sort_keys=False)


class RunFolder:
    """The run folder ``path``: its lock, ``config.yaml``, ``checkpoint.pt`` and
    ``metrics.json``.

    :param bool resume: :meth:`start` continues the checkpoint if there is one.
    :param bool overwrite: :meth:`start` may start afresh over an existing checkpoint.

    It is also the store of :func:`pyrovae.infer.train.train`: :meth:`start` (rank 0, before
    the first step), :meth:`save` (each epoch), :meth:`save_metrics` and :meth:`release`.
    """

    def __init__(
        self, path: str | os.PathLike[str], resume: bool = False, overwrite: bool = False
    ) -> None:
        if resume and overwrite:
            raise ValueError("give --resume or --overwrite, not both")
        self.path, self.resume, self.overwrite = Path(path), resume, overwrite
        if self.path.exists() and not self.path.is_dir():
            raise ValueError(f"--out {self.path} is a file; give a folder")
        self.lock, self.holds = Lock(self.path, LOCK), 0
        # the config that checkpoints saved from now on carry
        self.describes: dict[str, Any] | None = None
        self._checkpoint: Any = _UNREAD  # read once: the checkpoint, None, or _UNREAD
        self._written_config: Any = _UNREAD

    # ownership
    def acquire(self) -> "RunFolder":
        """Own the folder (created if missing) until as many :meth:`release` calls."""
        self.lock.acquire()
        self.holds += 1
        return self

    def release(self) -> None:
        self.holds -= 1
        if self.holds <= 0:
            self.holds = 0
            self.lock.release()

    def __enter__(self) -> "RunFolder":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    # reading, each file once
    def checkpoint(self) -> dict[str, Any] | None:
        """The checkpoint (:func:`pyrovae.infer.checkpoint.load`'s dict), ``None`` without one."""
        if self._checkpoint is _UNREAD:
            path = self.path / CHECKPOINT
            self._checkpoint = ckpt.load(path) if path.is_file() else None
        return self._checkpoint

    def config(self) -> dict[str, Any] | None:
        """The run's config as written: the one its checkpoint carries, else ``config.yaml``
        (``None`` without either)."""
        state = self.checkpoint()
        if state is not None and state.get("config") is not None:
            return state["config"]
        if self._written_config is _UNREAD:
            path = self.path / CONFIG
            self._written_config = None
            if path.is_file():
                from .config import read_file

                self._written_config = read_file(path)
        return self._written_config

    def trained_config(self) -> dict[str, Any]:
        """:meth:`config`, refusing a folder that holds no run pyrovae can rebuild."""
        config = self.config()
        if config is not None and self.checkpoint() is not None:
            return config
        if self.checkpoint() is not None:
            raise ValueError(
                f"{self.path} holds a checkpoint of a model pyrovae cannot rebuild from names "
                f"(a class of your own: no {CONFIG}); build the model in Python and load it with "
                f"model.load_state_dict(torch.load('{self.path / CHECKPOINT}')['model'])"
            )
        raise FileNotFoundError(
            f"{self.path} holds no trained run ({CONFIG} and {CHECKPOINT}); give a folder "
            "written by fit(out=...) or pyrovae train"
        )

    # the store of infer.train
    def start(self, model: Any, world_size: int = 1) -> dict[str, Any] | None:
        """Own the folder (until :meth:`release`) and return the checkpoint to resume
        (``None``: a fresh start), after checking that it may be used; removes the temporary
        files a killed save left behind."""
        self.acquire()
        return self.resumed(model, world_size)

    def resumed(self, model: Any, world_size: int = 1) -> dict[str, Any] | None:
        """The checks of :meth:`start` in an owned folder, without taking it again."""
        state = self.checkpoint()
        if state is not None:
            if not self.resume:
                if not self.overwrite:
                    raise FileExistsError(
                        f"{self.path / CHECKPOINT} exists; resume it (resume=True, --resume), "
                        "pick another out folder, or pass overwrite=True (--overwrite) to start "
                        "afresh"
                    )
                state = None
            else:
                ckpt.check_model(self.path / CHECKPOINT, state, model)
                written_by = state.get("world_size", 1)
                if written_by != world_size:
                    how = (
                        f"torchrun --nproc-per-node {written_by}"
                        if written_by > 1
                        else "no torchrun"
                    )
                    raise ValueError(
                        f"{self.path / CHECKPOINT} was written by {written_by} process(es) and "
                        f"continues exactly only with as many (here {world_size}): resume with "
                        f"{how}"
                    )
        for tmp in self.path.glob(".*.tmp"):  # a killed save's
            tmp.unlink(missing_ok=True)
        return state

    def save(self, state: Mapping[str, Any]) -> None:
        """Write the checkpoint ``state`` (with :attr:`describes` as its ``config``), then
        ``config.yaml``."""
        config = self.describes
        if config is not None:
            state = {**state, "config": config}
        buffer = io.BytesIO()
        torch.save(state, buffer)
        path = self.path / CONFIG
        text = config_text(config) if config is not None else None
        if config is not None and path.is_file() and path.read_text() != text:
            path.unlink()  # it would not describe the checkpoint about to be renamed
        write_atomically(self.path / CHECKPOINT, buffer.getvalue())
        if text is not None:
            self.write_config(text)

    def write_config(self, text: str) -> None:
        """``config.yaml``, after the checkpoint it describes (unless it holds ``text``)."""
        path = self.path / CONFIG
        if not (path.is_file() and path.read_text() == text):
            write_atomically(path, text)

    def save_metrics(self, metrics: Mapping[str, Any]) -> None:
        write_atomically(self.path / METRICS, json.dumps(metrics, indent=1))
