"""One writer per run folder: `RunLock`, an advisory lock on ``<run folder>/.lock``.

Training holds the lock for the whole run (and ``overwrite`` takes it before deleting
anything), so a second ``textgen train --out R`` or a second `Trainer` on the same ``out_dir``
is refused in one line instead of interleaving ``last.pt``, ``best.pt`` and ``metrics.jsonl``.
The lock is ``fcntl.flock`` on an open file: the kernel drops it when the process ends, however
it ends, so a SIGKILLed run never leaves a stale lock to clean up. The lock file itself stays
(deleting it would let two processes lock two different files). Readers (``generate``,
``evaluate``, ``info``, ``plot``) never take it: every file a run writes is replaced atomically,
so they never see half of one. Where ``fcntl`` is missing (Windows) the lock does nothing.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks, runs are not guarded
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = ".lock"


class RunFolderBusyError(RuntimeError):
    """Another process is writing into the run folder (it holds the folder's lock)."""


class RunLock:
    """An exclusive, non-blocking lock on a run folder, held until `release` or process exit.

    Args:
        folder: the run folder (created if missing).

    Example:
        >>> with RunLock(tmp_path / "run"):       # doctest: +SKIP
        ...     train_into(tmp_path / "run")
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """True while this object holds the lock."""
        return self._fd is not None

    def acquire(self) -> RunLock:
        """Take the lock (a no-op when this object already holds it); returns ``self``.

        Raises:
            RunFolderBusyError: another process holds it; the message names the folder and the
                holder's pid.
        """
        if self._fd is not None or fcntl is None:
            return self
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            who = f"process {holder}" if holder else "another process"
            raise RunFolderBusyError(
                f"run folder {self.folder} is in use by {who} (a training run holds "
                f"{self.path}); wait for it to end, or use another out_dir (--out)"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        # Record who holds it, for the message a second writer gets (informative only).
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        """Drop the lock (closing the file drops it); safe to call when not held."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def check(self) -> None:
        """Raise `RunFolderBusyError` if another process holds the lock; hold nothing after.

        Used before expensive preparation (encoding a corpus), so a busy folder is refused
        early; the writer still takes the lock for real when it starts.
        """
        if self.held or not self.path.exists():
            return
        probe = RunLock(self.folder)
        probe.acquire()
        probe.release()

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()

    def __del__(self) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


__all__ = ["LOCK_NAME", "RunFolderBusyError", "RunLock"]
