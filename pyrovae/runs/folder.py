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

import errno
import json
import os
import stat
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import torch
import yaml

from ..infer import checkpoint as ckpt
from .lock import LOCK, Lock

CONFIG, CHECKPOINT, METRICS = "config.yaml", "checkpoint.pt", "metrics.json"
OWN = (CONFIG, CHECKPOINT, METRICS, LOCK)
"""The names that make a folder a pyrovae run (any one of them)."""
_UNREAD = object()


class WriteError(RuntimeError):
    """A run folder's file could not be written (a full disk, a lost mount): the previous
    version of the file is kept. Not bad input: the command line exits 1."""


def write_atomically(path: str | os.PathLike[str], data: str | bytes) -> None:
    """Write ``data`` (text or bytes) to ``path`` so that a reader, or the disk after a power
    cut, sees the old content or the new, never a part: a temporary file with a unique name in
    the same folder (created, never opened through a link), written, fsynced, renamed over
    ``path`` (``os.replace``, which replaces a link rather than its target), then the folder
    fsynced so that the rename itself lasts.

    :raises WriteError: (one line) when the system refuses to write, e.g. a full disk; the
        temporary file is removed and the old ``path`` stays as it was.
    """
    path, data = Path(path), data.encode() if isinstance(data, str) else data
    _rename(_temporary(path, lambda f: f.write(data)), path)


def _temporary(path: Path, write: Callable[[BinaryIO], object]) -> Path:
    """The first half of :func:`write_atomically`: a new temporary file beside ``path`` that
    ``write(file)`` fills, fsynced; removed again if anything fails."""
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        raise _write_error(path, err) from None
    try:
        with os.fdopen(fd, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise _write_error(path, err) from None
        raise
    return Path(tmp)


def _rename(tmp: Path, path: Path) -> None:
    """The second half of :func:`write_atomically`: ``tmp`` renamed over ``path``, the folder
    fsynced."""
    try:
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise _write_error(path, err) from None
    _fsync_folder(path.parent)


def _write_error(path: Path, err: OSError) -> "WriteError":
    reason = err.strerror or type(err).__name__
    return WriteError(
        f"could not write {path} ({reason}); the previous {path.name}, if any, is kept: free "
        "some space (or fix the folder), then continue with --resume"
    )


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
        _check_out(self.path)
        self.lock, self.holds = Lock(self.path, LOCK), 0
        # the config that checkpoints saved from now on carry
        self.describes: dict[str, Any] | None = None
        self._checkpoint: Any = _UNREAD  # read once: the checkpoint, None, or _UNREAD
        self._written_config: Any = _UNREAD

    # ownership
    def acquire(self) -> "RunFolder":
        """Own the folder (created if missing) until as many :meth:`release` calls; a folder
        that holds other files than a run's, or a symbolic link, is refused first."""
        if not self.lock.held:
            _check_contents(self.path)
        try:
            self.lock.acquire()
        except OSError as err:  # nothing made is left (the lock removes it)
            raise ValueError(
                f"--out {_short(self.path)} cannot be made ({err.strerror}); give another folder"
            ) from None
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
            data = ckpt.read_bytes(path)
            self._checkpoint = None if data is None else ckpt.load(path, data=data)
        return self._checkpoint

    def config(self) -> dict[str, Any] | None:
        """The run's config as written: the one its checkpoint carries, else ``config.yaml``
        (``None`` without either)."""
        state = self.checkpoint()
        if state is not None and state.get("config") is not None:
            return state["config"]
        if self._written_config is _UNREAD:
            path = self.path / CONFIG
            data = ckpt.read_bytes(path)
            self._written_config = None if data is None else read_mapping(data, path)
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
        sealed = ckpt.sealed(state)
        tmp = _temporary(self.path / CHECKPOINT, lambda f: torch.save(sealed, f))
        path = self.path / CONFIG
        text = config_text(config) if config is not None else None
        try:
            if config is not None and _holds(path) not in (None, text):
                path.unlink()  # it would not describe the checkpoint about to be renamed
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _rename(tmp, self.path / CHECKPOINT)
        if text is not None:
            self.write_config(text)

    def write_config(self, text: str) -> None:
        """``config.yaml``, after the checkpoint it describes (unless it holds ``text``)."""
        path = self.path / CONFIG
        if _holds(path) != text:
            write_atomically(path, text)

    def save_metrics(self, metrics: Mapping[str, Any]) -> None:
        write_atomically(self.path / METRICS, json.dumps(metrics, indent=1))


def _holds(path: Path) -> str | None:
    """The text of the run folder's file ``path`` (``None`` without one), read without
    following a link."""
    data = ckpt.read_bytes(path)
    return None if data is None else data.decode(errors="replace")


def read_mapping(data: bytes, path: str | os.PathLike[str]) -> dict[str, Any]:
    """The config mapping in the bytes ``data`` of ``path`` (:func:`.yaml.read_mapping`)."""
    from .yaml import read_mapping as parse

    return parse(data, path)


def _check_out(path: Path) -> None:
    """Refuse, in one line, an out folder that cannot be one: a link loop, a name the system
    refuses, a file, a file system's root or the home folder itself."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        info = None
    except NotADirectoryError:
        raise ValueError(f"--out {path}: a part of it is a file; give a folder") from None
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise ValueError(f"--out {path} is a loop of symbolic links; give a folder") from None
        if err.errno == errno.ENAMETOOLONG:
            raise ValueError(
                f"--out {_short(path)}: a name in it is too long for the file system; give "
                "a shorter one"
            ) from None
        raise ValueError(f"--out {path} cannot be used ({err.strerror}); give a folder") from None
    if info is not None and not stat.S_ISDIR(info.st_mode):
        raise ValueError(f"--out {path} is a file; give a folder")
    real = Path(os.path.realpath(path))
    if real.parent == real or real == Path.home().resolve():
        where = "a file system's root" if real.parent == real else "the home folder"
        raise ValueError(
            f"--out {path} is {where}; give a folder of its own for the run (e.g. {path / 'run'})"
        )


def _short(path: Path, limit: int = 80) -> str:
    text = str(path)
    return text if len(text) <= limit else f"{text[: limit // 2]}…{text[-limit // 4 :]}"


def _check_contents(path: Path) -> None:
    """Refuse a folder that holds a symbolic link at any depth (it could point outside the
    run) or that is not empty and holds none of a run's files (``OWN``): it is someone else's
    folder."""
    try:
        entries = list(os.scandir(path))
    except FileNotFoundError:
        return
    except OSError as err:
        raise ValueError(f"--out {path} cannot be read ({err.strerror}); give a folder") from None
    links = sorted(
        Path(top, name)
        for top, folders, files in os.walk(path)  # never into a linked folder
        for name in folders + files
        if os.path.islink(os.path.join(top, name))
    )
    if links:
        raise ValueError(
            f"{links[0]} is a symbolic link; pyrovae follows no link in a run folder: remove it"
        )
    names = {e.name for e in entries}
    if names and not names & set(OWN):
        raise ValueError(
            f"--out {path} holds {len(names)} other file(s) and is not a pyrovae run (no "
            f"{CONFIG}, {CHECKPOINT} or {METRICS}); give a new or empty folder"
        )
