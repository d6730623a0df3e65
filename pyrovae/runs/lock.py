"""Ownership of a run folder: one process at a time.

:class:`Lock` creates ``DIR/.lock`` holding the owner's pid and host and locks it with
``flock``; a second owner is refused in one line naming the first. The operating system drops
the lock when its process ends, however it ends, so a lock file left by a killed run (a stale
lock) is simply taken over. (Without ``fcntl``, e.g. on Windows, the pid in the file decides:
a lock whose process is gone is stale.)

This module imports nothing of pyrovae, so that a test can load it alone in another process.
"""

import errno
import json
import os
import socket
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

fcntl: ModuleType | None
try:
    import fcntl
except ImportError:  # pragma: no cover (Windows)
    fcntl = None


LOCK = ".lock"
"""The lock file's name in a run folder."""


class Lock:
    """Ownership of ``folder`` (created if missing) by this object, through ``folder/.lock``.

    Taken by :meth:`acquire` (or ``with``); :meth:`release` removes the lock file, and every
    folder that :meth:`acquire` created and that is still empty: a run refused while it held
    the lock leaves no trace. Taking it again while held is a no-op.
    """

    def __init__(self, folder: str | os.PathLike[str], name: str = LOCK) -> None:
        self.folder, self.name = Path(folder), name
        self.fd: int | None = None
        self.created: list[Path] = []

    @property
    def held(self) -> bool:
        return self.fd is not None

    def acquire(self) -> "Lock":
        """:raises ValueError: when another live process (or another ``Lock``) owns it."""
        if self.held:
            return self
        self.created = [p for p in (self.folder, *self.folder.parents) if not _exists(p)]
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            self.fd = _acquire(self.folder / self.name)
        except BaseException:
            _remove_empty(self.created)
            raise
        return self

    def release(self) -> None:
        if self.fd is None:
            return
        (self.folder / self.name).unlink(missing_ok=True)
        os.close(self.fd)
        self.fd = None
        _remove_empty(self.created)

    def __enter__(self) -> "Lock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def owned(folder: str | os.PathLike[str]) -> Lock:
    """``with owned(folder):`` own ``folder`` for the block (a :class:`Lock`)."""
    return Lock(folder)


def _exists(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names something (a dangling link included); a name the system refuses
    (too long) names nothing."""
    try:
        os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError as err:
        if err.errno == errno.ENAMETOOLONG:
            return False
        raise
    return True


NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
"""``os.open`` flag: fail (``ELOOP``) where the last name is a symbolic link instead of
following it."""


def open_nofollow(path: str | os.PathLike[str], flags: int, mode: int = 0o644) -> int:
    """``os.open(path, flags | O_NOFOLLOW)``: a symbolic link planted under a run folder's
    file name is never followed (``ValueError`` naming it), so nothing outside is touched."""
    try:
        return os.open(path, flags | NOFOLLOW, mode)
    except OSError as err:
        if err.errno == errno.ELOOP or os.path.islink(path):
            raise ValueError(
                f"{path} is a symbolic link; pyrovae follows no link in a run folder: remove it"
            ) from None
        raise


def _acquire(path: Path) -> int:
    while True:
        fd = open_nofollow(path, os.O_RDWR | os.O_CREAT)
        if not _lock(fd, path):
            owner = _owner(fd)
            os.close(fd)
            raise ValueError(
                f"{path.parent} is in use by {owner} (lock file {path}); wait for that run to "
                "end or train into another --out folder"
            )
        try:
            same = os.lstat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:  # the owner removed it between our open and our lock
            same = False
        if same:
            break
        os.close(fd)
    os.ftruncate(fd, 0)
    record = {"pid": os.getpid(), "host": socket.gethostname()}
    os.write(fd, json.dumps(record).encode())
    os.fsync(fd)
    return fd


def _lock(fd: int, path: Path) -> bool:
    """Take the lock on the open lock file ``fd``; ``False`` when a live process holds it."""
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True
    record = _record(fd)  # pragma: no cover (no fcntl): the pid decides
    return not (record and record.get("pid") != os.getpid() and _alive(record["pid"]))


def _record(fd: int) -> dict[str, Any]:
    os.lseek(fd, 0, os.SEEK_SET)
    try:
        record = json.loads(os.read(fd, 4096) or b"{}")
    except ValueError:
        return {}
    return record if isinstance(record, dict) else {}


def _owner(fd: int) -> str:
    record = _record(fd)
    if "pid" not in record:
        return "another process"
    return f"process {record['pid']} on {record.get('host', 'this machine')}"


def _alive(pid: int) -> bool:  # pragma: no cover (used without fcntl only)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def _remove_empty(folders: Iterable[Path]) -> None:
    for folder in folders:  # deepest first
        if not _exists(folder):  # never made (e.g. its name was too long)
            continue
        try:
            folder.rmdir()
        except OSError:
            break
