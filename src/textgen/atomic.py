"""Writing files so that a crash, a full disk or a refused permission never costs data.

Every file textgen keeps (checkpoints, ``metrics.jsonl`` rewrites, ``train_config.json``,
``data.json``, tokenizer JSON, token cache entries) is written to a temporary file in the same
folder, flushed to disk, and renamed over the destination: at every moment the destination holds
either its previous content or the new one, never a mix. When the write fails, the temporary
file is removed, the previous file is left as it was, and the error is a `StorageError` naming
the destination and the reason (no space left, permission denied).

Tests may set ``TEXTGEN_TEST_SLOW_WRITE`` to a number of seconds: each atomic write then sleeps
that long before its rename, so a crash test can kill a process in the middle of one.
"""

from __future__ import annotations

import errno as errno_codes
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

SLOW_WRITE_ENV = "TEXTGEN_TEST_SLOW_WRITE"


class StorageError(OSError):
    """A file could not be written (disk full, no permission, ...); names the file.

    It is an `OSError` with the original ``errno``, so callers may test ``error.errno``.
    """

    def __init__(self, code: int | None, message: str, path: Path) -> None:
        super().__init__(code, message, str(path))
        self.message = message
        self.path = path

    def __str__(self) -> str:
        return self.message


def storage_error(path: Path, error: OSError, what: str = "file") -> StorageError:
    """A one-line `StorageError` for ``error``, raised while writing ``what`` at ``path``."""
    if isinstance(error, StorageError):
        return error
    reason = error.strerror or str(error) or type(error).__name__
    hint = {
        errno_codes.ENOSPC: "; free some space (or write elsewhere) and try again",
        errno_codes.EDQUOT: "; free some space (or write elsewhere) and try again",
        errno_codes.EACCES: "; check the folder's permissions",
        errno_codes.EROFS: "; the file system is read-only",
    }.get(error.errno or 0, "")
    return StorageError(error.errno, f"cannot write {what} {path}: {reason}{hint}", path)


def atomic_write(
    path: str | Path,
    write: Callable[[IO[bytes]], None],
    *,
    what: str = "file",
    durable: bool = True,
) -> Path:
    """Write ``path`` through ``write(binary_file)`` atomically (temporary file + rename).

    Args:
        path: the destination; its folder is created if missing.
        write: fills the open temporary file.
        what: names the file in errors (``"checkpoint"``, ``"metrics"``...).
        durable: fsync the file and its folder, so the rename survives a power cut.

    Returns:
        ``path``.

    Raises:
        StorageError: the folder or file could not be written; the previous file is intact.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as error:
        raise storage_error(path, error, what) from None
    try:
        os.chmod(tmp_name, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual file mode
        with os.fdopen(handle, "wb") as file:
            write(file)
            file.flush()
            if durable:
                os.fsync(file.fileno())
        _test_delay()
        os.replace(tmp_name, path)
    except BaseException as error:
        Path(tmp_name).unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise storage_error(path, error, what) from None
        raise
    if durable:
        fsync_dir(path.parent)
    return path


def atomic_write_text(path: str | Path, text: str, *, what: str = "file") -> Path:
    """`atomic_write` of UTF-8 ``text``."""
    data = text.encode("utf-8")

    def write(file: IO[bytes]) -> None:
        file.write(data)

    return atomic_write(path, write, what=what)


def append_line(path: Path, line: str, *, what: str = "file") -> None:
    """Append one line with a single ``write`` call (a crash leaves at most one cut line,
    which readers skip); errors name the file."""
    try:
        with path.open("a", encoding="utf-8") as handle:
            handle.write(line)
    except OSError as error:
        raise storage_error(path, error, what) from None


def fsync_dir(directory: Path) -> None:
    """Make a rename durable; not every platform can open a folder, so failures are ignored."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _test_delay() -> None:
    delay = os.environ.get(SLOW_WRITE_ENV)
    if delay:
        time.sleep(float(delay))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


__all__ = [
    "SLOW_WRITE_ENV",
    "StorageError",
    "append_line",
    "atomic_write",
    "atomic_write_text",
    "fsync_dir",
    "storage_error",
]
