"""A run folder (``pyrovae train --out DIR``): owned by one process at a time, and its
``config.yaml`` written only with the checkpoint it describes.

* **Ownership**: :func:`owned` creates ``DIR/.lock`` holding the owner's pid and host and locks
  it with ``flock``; a second process that tries to own the folder is refused in one line naming
  the owner. The operating system drops the lock when its process ends, however it ends, so a
  lock file left by a killed run (a stale lock) is simply taken over. (Without ``fcntl``, e.g.
  on Windows, the pid in the file decides: a lock whose process is gone is stale.)
* **Config with its checkpoint**: while :func:`describing` is active, every checkpoint saved
  into the folder carries the run's config, and ``config.yaml`` is written (atomically) right
  after the checkpoint's rename; an old ``config.yaml`` that would not describe the new
  checkpoint is removed before it. So ``config.yaml`` never sits beside a checkpoint it does
  not describe, and a run stopped before its first checkpoint leaves the previous pair intact.
"""

import contextlib
import json
import os
import socket
import tempfile
from pathlib import Path

import yaml

try:
    import fcntl
except ImportError:  # pragma: no cover (Windows)
    fcntl = None

LOCK, CONFIG = ".lock", "config.yaml"
_HELD = {}  # resolved folder → open lock file descriptor, for the folders this process owns
_CONFIGS = {}  # resolved folder → the config saved with its checkpoints


@contextlib.contextmanager
def owned(folder):
    """Own ``folder`` (created if missing) for the ``with`` block; re-entrant in one process.

    On leaving, the lock file is removed, and so is every folder this call created that is
    still empty: a run refused inside the block leaves no trace.

    :raises ValueError: when another live process owns the folder.
    """
    folder = Path(folder)
    key = folder.resolve()
    if key in _HELD:
        yield folder
        return
    created = [p for p in (folder, *folder.parents) if not p.exists()]
    folder.mkdir(parents=True, exist_ok=True)
    try:
        _HELD[key] = _acquire(folder / LOCK)
    except BaseException:
        _remove_empty(created)
        raise
    try:
        yield folder
    finally:
        fd = _HELD.pop(key)
        (folder / LOCK).unlink(missing_ok=True)
        os.close(fd)
        _remove_empty(created)


def _acquire(path):
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        if not _lock(fd, path):
            owner = _owner(fd)
            os.close(fd)
            raise ValueError(
                f"{path.parent} is in use by {owner} (lock file {path}); wait for that run to "
                "end or train into another --out folder"
            )
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
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


def _lock(fd, path):
    """Take the lock on the open lock file ``fd``; ``False`` when a live process holds it."""
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True
    record = _record(fd)  # pragma: no cover (no fcntl): the pid decides
    return not (record and record.get("pid") != os.getpid() and _alive(record["pid"]))


def _record(fd):
    os.lseek(fd, 0, os.SEEK_SET)
    try:
        record = json.loads(os.read(fd, 4096) or b"{}")
    except ValueError:
        return {}
    return record if isinstance(record, dict) else {}


def _owner(fd):
    record = _record(fd)
    if "pid" not in record:
        return "another process"
    return f"process {record['pid']} on {record.get('host', 'this machine')}"


def _alive(pid):  # pragma: no cover (used without fcntl only)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def _remove_empty(folders):
    for folder in folders:  # deepest first
        try:
            folder.rmdir()
        except OSError:
            break


@contextlib.contextmanager
def describing(folder, config):
    """While active, checkpoints saved into ``folder`` carry ``config`` (a plain mapping) and
    are followed by ``folder/config.yaml`` (see the module docstring)."""
    key = Path(folder).resolve()
    _CONFIGS[key] = dict(config)
    try:
        yield
    finally:
        _CONFIGS.pop(key, None)


def config_for(folder):
    """The config that checkpoints saved into ``folder`` carry now, or ``None``."""
    return _CONFIGS.get(Path(folder).resolve())


def config_text(config):
    return yaml.safe_dump(config, sort_keys=False)


def before_checkpoint(folder, config):
    """Remove a ``config.yaml`` that would not describe the checkpoint about to be renamed."""
    path = Path(folder) / CONFIG
    if path.is_file() and path.read_text() != config_text(config):
        path.unlink()


def after_checkpoint(folder, config):
    """Write ``config.yaml`` for the checkpoint just renamed into place (if it differs)."""
    path = Path(folder) / CONFIG
    if not (path.is_file() and path.read_text() == config_text(config)):
        write_atomically(path, config_text(config))


def write_atomically(path, text):
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename, so
    that readers see the old or the new content, never a part."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
