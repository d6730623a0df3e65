"""One results file per benchmark: rows merged by key, written atomically under a lock."""

import fcntl
import json
import os


def merge_row(path, row, key, **meta):
    """Put ``row`` into ``path``'s ``entries`` in place of the entry with the same values at
    ``key`` (a tuple of field names; missing fields read as 0), set the report fields ``meta``,
    and write the file atomically; a lock lets several benchmark processes finish at once."""
    path.parent.mkdir(exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        report = json.loads(path.read_text()) if path.exists() else {"entries": []}
        same = [row[k] for k in key]
        rows = [e for e in report["entries"] if [e.get(k, 0) for k in key] != same]
        report.update(meta, entries=[*rows, row])
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(report, indent=1))
        os.replace(tmp, path)
    path.with_suffix(".lock").unlink(missing_ok=True)
