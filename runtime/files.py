"""Reading files the runtime does not control, and writing the ones it caches.

Two kinds of files reach the runtime from outside: files the user names (a program's
parameters, an input), which must be regular files of a sane size (a FIFO or a device would
block or never end), and cache entries, whose content decides what code runs in the user's
process. Cache entries are therefore kept private and checked before use:

* a cache directory is created user-only (0700) and made so when the user owns it; a cache
  directory the user does not own, or that others may write, is not used at all;
* an entry is written atomically (staged, then renamed) as a user-only file (0600);
* an entry is read only when it is a regular file owned by the user that no one else may
  write, and the caller checks its content against a digest recorded at write time and
  bound to the entry's key (`entry_digest`), so a damaged, truncated or swapped entry is
  a miss, never a load.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import stat
import tempfile
from collections.abc import Iterable

USER_ONLY_DIRECTORY = 0o700
USER_ONLY_FILE = 0o600
OTHERS_WRITE = stat.S_IWGRP | stat.S_IWOTH


class FileRefused(Exception):
    """A file cannot be read as asked; the message says why (no path, the caller has it)."""


def read_regular_file(path: str | os.PathLike, max_bytes: int) -> bytes:
    """The bytes of `path`, refused unless it is a regular file of at most `max_bytes`.

    It is opened without blocking, so a FIFO or a device named by mistake is refused
    instead of hanging the process, and only then checked, so the file checked is the
    one read."""
    return _read(path, max_bytes, private=False)


def read_private_file(path: str | os.PathLike, max_bytes: int) -> bytes | None:
    """The bytes of a cache entry, or None when it is missing or not to be trusted: not a
    regular file, not owned by the user, writable by others, or larger than `max_bytes`."""
    try:
        return _read(path, max_bytes, private=True)
    except FileRefused:
        return None


def _read(path: str | os.PathLike, max_bytes: int, *, private: bool) -> bytes:
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW * private)
    except OSError as error:
        raise FileRefused(error.strerror or str(error)) from None
    try:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode):
            raise FileRefused("not a regular file")
        if private and (status.st_uid != os.geteuid() or status.st_mode & OTHERS_WRITE):
            raise FileRefused("not a private file of this user")
        if status.st_size > max_bytes:
            raise FileRefused(f"larger than {max_bytes} bytes")
        chunks = []
        remaining = max_bytes + 1
        while remaining > 0:
            chunk = os.read(descriptor, min(remaining, 1 << 24))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
        data = b"".join(chunks)
        if len(data) > max_bytes:
            raise FileRefused(f"larger than {max_bytes} bytes")
        return data
    except OSError as error:
        raise FileRefused(error.strerror or str(error)) from None
    finally:
        os.close(descriptor)


def private_directory(path: str | os.PathLike) -> pathlib.Path | None:
    """`path` as a cache directory: created user-only, or made user-only when it exists
    and is the user's. None when it cannot be used safely (owned by someone else, or
    writable by others after all) or cannot be created."""
    directory = pathlib.Path(path)
    try:
        missing = [p for p in (directory, *directory.parents) if not p.exists()]
        for created in reversed(missing):
            created.mkdir(mode=USER_ONLY_DIRECTORY, exist_ok=True)
        status = directory.lstat()
        if not stat.S_ISDIR(status.st_mode) or status.st_uid != os.geteuid():
            return None
        if stat.S_IMODE(status.st_mode) != USER_ONLY_DIRECTORY:
            directory.chmod(USER_ONLY_DIRECTORY)
    except OSError:
        return None
    return directory


def write_private_file(path: pathlib.Path, data: bytes) -> bool:
    """Write `data` to `path` atomically (a reader sees the old file, the new one, or
    none) as a user-only file; False when the cache cannot be written (it only costs
    time)."""
    staging = None
    try:
        descriptor, staging = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
        os.chmod(staging, USER_ONLY_FILE)
        os.replace(staging, path)
        return True
    except OSError:
        if staging is not None:
            pathlib.Path(staging).unlink(missing_ok=True)
        return False


def entry_digest(key: str, parts: Iterable[bytes]) -> str:
    """The SHA-256 of an entry's key and contents, each part length-prefixed so that no
    two different entries share a digest: what binds an entry to the key it is stored
    under."""
    digest = hashlib.sha256()
    for part in (key.encode(), *parts):
        digest.update(len(part).to_bytes(8, "little"))
        digest.update(part)
    return digest.hexdigest()
