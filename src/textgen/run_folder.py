"""The run folder and the run's console output: everything a training run writes, in one place.

A run folder holds ``last.pt`` (resumable), ``best.pt`` (lowest validation loss), optional
``step-N.pt``, ``metrics.jsonl`` (one JSON object per logged step or validation) and
``train_config.json``. `RunFolder` is the only writer of those files and the only owner of the
progress bar, so the rule about who writes what has exactly one place to live: under
``torchrun`` only rank 0's `RunFolder` (``main=True``) writes files, takes the folder's lock,
draws the bar and prints; the others' are silent.

Messages go through the ``textgen`` logger. The package installs a `logging.NullHandler`, as a
library should; while a run is in progress and the application has not configured logging,
`RunFolder` adds a handler that prints above the progress bar (``tqdm.write``), so each message
reaches the user exactly once and never breaks the bar.
"""

from __future__ import annotations

import json
import logging
import math
import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from textgen.atomic import append_line, atomic_write_text
from textgen.checkpoint import run_checkpoints, save_checkpoint
from textgen.lockfile import RunLock
from textgen.train_config import TrainConfig
from textgen.validation import InvalidValueError

logger = logging.getLogger("textgen.trainer")


class TqdmHandler(logging.Handler):
    """A logging handler that prints above any tqdm progress bar instead of through it."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=sys.stderr)  # stdout is for results
        except Exception:  # pragma: no cover - logging must never break the run
            self.handleError(record)


def logging_is_configured() -> bool:
    """True when the application set up logging: a handler on the root logger, or one on the
    ``textgen`` logger other than the package's NullHandler and textgen's own console one."""
    package = logging.getLogger("textgen")
    own = [h for h in package.handlers if not isinstance(h, logging.NullHandler | TqdmHandler)]
    return bool(logging.getLogger().handlers or own)


@contextmanager
def console_messages(level: int) -> Iterator[None]:
    """Show ``textgen`` log records of ``level`` and above on the console while inside.

    When the application configured logging, its handlers decide and nothing changes. Else one
    `TqdmHandler` is used (added here, or lowered to ``level`` if an outer block added it), so a
    message is printed once whatever the nesting, and the previous levels come back after.
    """
    if logging_is_configured():
        yield
        return
    package = logging.getLogger("textgen")
    existing = next((h for h in package.handlers if isinstance(h, TqdmHandler)), None)
    handler = existing or TqdmHandler(level)
    saved = (handler.level, package.level)
    handler.setLevel(min(level, handler.level))
    package.setLevel(handler.level)
    if existing is None:
        package.addHandler(handler)
    try:
        yield
    finally:
        if existing is None:
            package.removeHandler(handler)
        handler.setLevel(saved[0])
        package.setLevel(saved[1])


class RunFolder:
    """Checkpoints, ``metrics.jsonl``, the progress bar and run messages of one training run.

    Args:
        out_dir: the run folder (created when the run starts).
        progress: draw a progress bar and print validation lines.
        main: this process writes the run (rank 0 under ``torchrun``; one process always);
            False makes every writing and printing method, and the lock, a no-op.
    """

    def __init__(self, out_dir: Path, *, progress: bool, main: bool = True) -> None:
        self.out_dir = out_dir
        self.main = main
        self.show_progress = progress and main
        self.bar: Any = None
        self._console = ExitStack()
        #: held by `Trainer.fit` for the whole run: one writer per run folder (rank 0's)
        self.lock: AbstractContextManager[Any] = RunLock(out_dir) if main else nullcontext()

    @property
    def last_path(self) -> Path:
        return self.out_dir / "last.pt"

    @property
    def metrics_path(self) -> Path:
        return self.out_dir / "metrics.jsonl"

    def refuse_existing_run(self) -> None:
        """Refuse to start a new run in a folder that holds one (a run is never replaced by
        accident).

        Raises:
            InvalidValueError: the folder holds ``last.pt``, ``best.pt`` or ``step-*.pt``.
        """
        if run_checkpoints(self.out_dir):
            raise InvalidValueError(
                "out_dir",
                f"{self.out_dir} already holds a run; continue it with resume=True "
                "(--resume), start afresh with overwrite=True (--overwrite), or use another "
                "out_dir (--out)",
            )

    def start(self, config: TrainConfig, *, total: int | None, initial: int, fresh: bool) -> None:
        """Prepare the folder for a run starting (``fresh``) or resuming at step ``initial``."""
        if not self.main:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        # A run killed inside an atomic write leaves its temporary file; the lock says no
        # other process is writing here, so any such file is litter from a dead run.
        for litter in self.out_dir.glob(".*.tmp"):
            litter.unlink(missing_ok=True)
        if not fresh and self.metrics_path.exists():
            # Steps logged after last.pt was written will run again: keep them only once.
            lines = self.metrics_path.read_text(encoding="utf-8").splitlines(keepends=True)
            kept = [line for line in lines if _record_step(line) <= initial]
            atomic_write_text(self.metrics_path, "".join(kept), what="metrics")
        if fresh:  # a new run (or an explicit overwrite): nothing of an older run may linger
            for old in [self.metrics_path, *run_checkpoints(self.out_dir)]:
                old.unlink(missing_ok=True)
        atomic_write_text(
            self.out_dir / "train_config.json",
            json.dumps(asdict(config), indent=2) + "\n",
            what="run settings",
        )
        self._console.enter_context(
            console_messages(logging.INFO if self.show_progress else logging.WARNING)
        )
        self.bar = tqdm(
            total=total,
            initial=initial,
            disable=not self.show_progress,
            unit="step",
            dynamic_ncols=True,
        )

    def log(self, record: dict[str, Any]) -> None:
        """Append one record to ``metrics.jsonl``."""
        if not self.main:
            return
        append_line(self.metrics_path, json.dumps(record) + "\n", what="metrics")

    def log_validation(self, metrics: dict[str, Any]) -> None:
        """Record a validation in ``metrics.jsonl`` and tell the user (above the bar)."""
        if not self.main:
            return
        self.log(metrics)
        self.message(
            f"step {metrics['step']}: val loss {metrics['val_loss']:.4f}, "
            f"bpc {_fmt(metrics['val_bpc'])}, ppl {metrics['val_perplexity']:.2f}"
        )

    def progress(self, metrics: dict[str, Any], *, refresh_postfix: bool) -> None:
        """Advance the bar one step; update its figures when ``refresh_postfix``."""
        if self.bar is None:
            return
        self.bar.update(1)
        if refresh_postfix:
            self.bar.set_postfix(
                loss=f"{metrics['train_loss']:.3f}",
                bpc=_fmt(metrics["train_bpc"]),
                tok_s=f"{metrics['tokens_per_s']:.0f}",
                lr=f"{metrics['lr']:.2e}",
                gnorm=f"{metrics['grad_norm']:.2f}",
                refresh=False,
            )

    def set_total(self, total: int) -> None:
        """The run's length changed (planned from a time budget): show it on the bar."""
        if self.bar is not None:
            self.bar.total = total
            self.bar.refresh()

    def message(self, text: str) -> None:
        """A line for the user (validation results): INFO on the ``textgen`` logger."""
        if self.main:
            logger.info(text)

    def warn(self, text: str) -> None:
        """A warning for the user: WARNING on the ``textgen`` logger (every rank of several
        takes the same decisions, so rank 0 speaks for all)."""
        if self.main:
            logger.warning(text)

    def save(self, name: str, **contents: Any) -> Path:
        """Write ``<name>.pt`` atomically (see `save_checkpoint`); its path, also where nothing
        is written (not ``main``)."""
        if not self.main:
            return self.out_dir / f"{name}.pt"
        return save_checkpoint(self.out_dir / f"{name}.pt", **contents)

    def prune(self, keep: int) -> None:
        """Delete all but the newest ``keep`` ``step-*.pt`` files."""
        if not self.main:
            return
        for old in sorted(self.out_dir.glob("step-*.pt"))[:-keep]:
            old.unlink()

    def close(self) -> None:
        """Close the bar and restore the console logging as it was before `start`."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        self._console.close()


def _record_step(line: str) -> float:
    """Step of a metrics.jsonl line; a line cut short by a crash counts as past every step."""
    try:
        return float(json.loads(line).get("step", 0))
    except (json.JSONDecodeError, AttributeError, TypeError, ValueError):
        return math.inf


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
