"""Callbacks: the one typed way to extend the Trainer's loop without editing it.

The Trainer calls `Callback.on_step_end` after every optimizer step, `on_evaluate_end` after
each validation and `on_checkpoint_saved` after each checkpoint file is written. Two built-ins:
`EarlyStopping` (stop when validation stops improving) and `SampleCallback` (print a short
sample every N steps, to watch the model learn).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm.auto import tqdm

if TYPE_CHECKING:
    from textgen.trainer import Trainer

logger = logging.getLogger(__name__)


class Callback:
    """Hooks the Trainer calls; override the ones you need. ``trainer.should_stop = True`` ends
    the run cleanly (``last.pt`` is written) after the current step."""

    def on_step_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        """After every optimizer step, with that step's metrics (see ``metrics.jsonl``)."""

    def on_evaluate_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        """After each validation, with the validation metrics."""

    def on_checkpoint_saved(self, trainer: Trainer, path: Path) -> None:
        """After a checkpoint file was written (atomically)."""


class EarlyStopping(Callback):
    """Stop when the validation loss has not improved by ``min_delta`` for ``patience`` checks."""

    def __init__(self, patience: int, min_delta: float = 0.0) -> None:
        if patience < 1:
            raise ValueError(f"patience must be >= 1, got {patience!r}")
        self.patience = patience
        self.min_delta = min_delta
        self.best = math.inf
        self.bad_checks = 0

    def on_evaluate_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        loss = metrics["val_loss"]
        if loss < self.best - self.min_delta:
            self.best, self.bad_checks = loss, 0
            return
        self.bad_checks += 1
        if self.bad_checks >= self.patience:
            logger.info("early stopping: no improvement in %d validations", self.bad_checks)
            trainer.should_stop = True
            trainer.stop_reason = "early_stopping"


class SampleCallback(Callback):
    """Print a short seeded sample every ``every`` steps, to watch the model learn."""

    def __init__(
        self,
        every: int,
        length: int = 200,
        prompt: str = "",
        seed: int = 0,
        write: Callable[[str], None] | None = None,
    ) -> None:
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every!r}")
        self.every, self.length, self.prompt, self.seed = every, length, prompt, seed
        self.write = write or tqdm.write

    def on_step_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        if metrics["step"] % self.every:
            return
        from textgen.sampler import Sampler

        text = (
            Sampler(trainer.model, trainer.tokenizer)
            .generate(self.prompt, max_new_tokens=self.length, seed=self.seed)[0]
            .text
        )
        self.write(f"--- sample at step {metrics['step']} ---\n{self.prompt}{text}\n---")


def callback_state(callback: Callback) -> dict[str, Any] | None:
    """What of a callback goes into ``last.pt`` so a resumed run continues it (None: nothing)."""
    if isinstance(callback, EarlyStopping):
        return {"best": callback.best, "bad_checks": callback.bad_checks}
    return None
