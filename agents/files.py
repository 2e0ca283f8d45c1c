"""Writing files the way a shared machine expects: whole or not at all, and as readable as the
user's umask says (tempfile's directories and files are private to their owner, so anything
written beside its target and renamed into place would otherwise stay 0700/0600)."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)  # no room left, a quota, a file size limit


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def make_readable(path: Path) -> None:
    """Give `path`, and everything under it, the modes a new file or directory gets from the umask."""
    mask = current_umask()
    for item in [path, *path.rglob("*")] if path.is_dir() else [path]:
        os.chmod(item, (0o777 if item.is_dir() else 0o666) & ~mask)


def write_atomic(path: Path, text: str) -> None:
    """Write beside `path` and rename over it: a reader sees the old file or the new one, whole."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        make_readable(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
