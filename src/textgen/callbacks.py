"""Callbacks: the one typed way to extend the Trainer's loop without editing it.

The Trainer calls, in order: `Callback.on_train_begin` once (after a resume has restored
everything), `on_step_end` after every optimizer step, `on_evaluate_end` after each validation,
`on_checkpoint_saved` after each checkpoint file is written, and `on_train_end` once with the
result. A callback that keeps state across a run returns it from `state_dict` and takes it back
in `load_state_dict`: the Trainer stores it in ``last.pt`` under the callback's `state_key`, so a
resumed run continues the callback too, and never looks at what kind of callback it is.

Built in: `EarlyStopping` (stop when validation stops improving), `SampleCallback` (print a
short sample every N steps, to watch the model learn) and `TensorBoardCallback` (live curves and
samples in TensorBoard).
"""

from __future__ import annotations

import importlib.util
import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm.auto import tqdm

from textgen.sampler import Sampler
from textgen.validation import check_float, check_int

if TYPE_CHECKING:
    from textgen.trainer import Trainer, TrainResult

logger = logging.getLogger(__name__)


class Callback:
    """Hooks the Trainer calls; override the ones you need.

    ``trainer.request_stop(reason)`` ends the run cleanly (``last.pt`` is written) after the
    current step, and ``reason`` becomes ``TrainResult.stopped_by``.
    """

    @property
    def state_key(self) -> str:
        """The name this callback's state is saved under in ``last.pt`` (default: the class
        name). Two callbacks of one class that both keep state need distinct keys."""
        return type(self).__name__

    def on_train_begin(self, trainer: Trainer) -> None:
        """Once, before the first step (after a resume restored weights, data and this state)."""

    def on_step_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        """After every optimizer step, with that step's metrics (see ``metrics.jsonl``)."""

    def on_evaluate_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        """After each validation, with the validation metrics."""

    def on_checkpoint_saved(self, trainer: Trainer, path: Path) -> None:
        """After a checkpoint file was written (atomically)."""

    def on_train_end(self, trainer: Trainer, result: TrainResult) -> None:
        """Once, when the run stops (for any reason but an exception), with its result."""

    def state_dict(self) -> dict[str, Any]:
        """What of this callback must survive a resume: plain values (ints, floats, strings,
        lists, dicts) or tensors. The default is nothing."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Take back what `state_dict` returned, in a resumed run."""


class EarlyStopping(Callback):
    """Stop when the validation loss has not improved by ``min_delta`` for ``patience`` checks.

    A run that stopped this way stays stopped when resumed with the same patience (its state is
    in ``last.pt``); resume with a larger patience to let it go on.
    """

    def __init__(self, patience: int, min_delta: float = 0.0) -> None:
        self.patience = check_int("patience", patience, minimum=1)
        self.min_delta = check_float("min_delta", min_delta, minimum=0)
        self.best = math.inf
        self.bad_checks = 0

    def on_train_begin(self, trainer: Trainer) -> None:
        if self.bad_checks >= self.patience:
            trainer.request_stop("early_stopping")

    def on_evaluate_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        loss = metrics["val_loss"]
        if loss < self.best - self.min_delta:
            self.best, self.bad_checks = loss, 0
            return
        self.bad_checks += 1
        if self.bad_checks >= self.patience:
            logger.info("early stopping: no improvement in %d validations", self.bad_checks)
            trainer.request_stop("early_stopping")

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "bad_checks": self.bad_checks}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = float(state["best"])
        self.bad_checks = int(state["bad_checks"])


class SampleCallback(Callback):
    """Print a short seeded sample every ``every`` steps, to watch the model learn.

    Args:
        every: steps between samples.
        length: tokens per sample.
        prompt: text the samples continue.
        seed: sampling seed (the same every time, so samples differ only by what was learned).
        write: where the text goes (default: above the progress bar).
    """

    def __init__(
        self,
        every: int,
        length: int = 200,
        prompt: str = "",
        seed: int = 0,
        write: Callable[[str], None] | None = None,
    ) -> None:
        self.every = check_int("every", every, minimum=1)
        self.length = check_int("length", length, minimum=1)
        self.prompt, self.seed = prompt, check_int("seed", seed, minimum=0)
        self.write = write or tqdm.write

    def on_step_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        if metrics["step"] % self.every:
            return
        text = (
            Sampler(trainer.model, trainer.tokenizer)
            .generate(self.prompt, max_new_tokens=self.length, seed=self.seed)[0]
            .text
        )
        self.write(f"--- sample at step {metrics['step']} ---\n{self.prompt}{text}\n---")


_MISSING_TENSORBOARD = (
    "TensorBoard logging needs the tensorboard package, which is not installed; install it "
    "with pip install 'textgen-lstm[tensorboard]'"
)
#: Step metrics -> TensorBoard tags (values that are None, e.g. bits per char of a BPE run
#: without byte counts, are skipped).
TRAIN_TAGS = {
    "train_loss": "train/loss",
    "train_bpc": "train/bits_per_char",
    "lr": "train/lr",
    "grad_norm": "train/grad_norm",
    "tokens_per_s": "train/tokens_per_s",
}
#: Validation metrics -> TensorBoard tags.
VAL_TAGS = {
    "val_loss": "val/loss",
    "val_bpc": "val/bits_per_char",
    "val_perplexity": "val/perplexity",
}


class TensorBoardCallback(Callback):
    """Write the run's curves to TensorBoard event files, to watch training live.

    Logged against the optimizer step: ``train/loss`` (nats/token), ``train/bits_per_char``,
    ``train/lr``, ``train/grad_norm`` and ``train/tokens_per_s`` every ``every`` steps;
    ``val/loss``, ``val/bits_per_char`` and ``val/perplexity`` at each validation, with a seeded
    ``sample`` text (``sample_length`` tokens; 0 for none). View with
    ``tensorboard --logdir LOG_DIR``.

    Resume: a resumed run writes into the same folder, starting a new event file with a
    TensorBoard *purge* marker at the resumed step + 1, so the events an interrupted run wrote
    after its last ``last.pt`` (steps the resumed run does again) are dropped by TensorBoard's
    readers: each step appears once. Events are flushed whenever a checkpoint is saved.

    Args:
        log_dir: the folder for the event files.
        every: steps between training scalars (the Trainer passes ``log_every``).
        sample_length: tokens of the sample logged at each validation (0: none).
        prompt: text the samples continue.
        seed: sampling seed, the same each time so samples differ only by what was learned.

    Raises:
        ImportError: the ``tensorboard`` package is missing (says how to install it).
    """

    def __init__(
        self,
        log_dir: str | Path,
        *,
        every: int = 1,
        sample_length: int = 200,
        prompt: str = "",
        seed: int = 0,
    ) -> None:
        self.log_dir = Path(log_dir)
        self.every = check_int("every", every, minimum=1)
        self.sample_length = check_int("sample_length", sample_length, minimum=0)
        self.prompt, self.seed = prompt, check_int("seed", seed, minimum=0)
        if importlib.util.find_spec("tensorboard") is None:  # fail before training, not after
            raise ImportError(_MISSING_TENSORBOARD)
        self._writer: Any = None

    def on_train_begin(self, trainer: Trainer) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ImportError(_MISSING_TENSORBOARD) from None
        # purge_step: readers drop earlier-written events at or after this step, i.e. what an
        # interrupted run logged after the checkpoint this run resumed from.
        self._writer = SummaryWriter(str(self.log_dir), purge_step=trainer.step + 1)

    def on_step_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        step = metrics["step"]
        if self._writer is None or step % self.every:
            return
        for key, tag in TRAIN_TAGS.items():
            if metrics.get(key) is not None:
                self._writer.add_scalar(tag, metrics[key], step)

    def on_evaluate_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        if self._writer is None:
            return
        step = metrics["step"]
        for key, tag in VAL_TAGS.items():
            if metrics.get(key) is not None:
                self._writer.add_scalar(tag, metrics[key], step)
        if self.sample_length:
            text = (
                Sampler(trainer.model, trainer.tokenizer)
                .generate(self.prompt, max_new_tokens=self.sample_length, seed=self.seed)[0]
                .text
            )
            # TensorBoard renders text as Markdown: a code block keeps the line breaks.
            self._writer.add_text("sample", f"```\n{self.prompt}{text}\n```", step)

    def on_checkpoint_saved(self, trainer: Trainer, path: Path) -> None:
        if self._writer is not None:
            self._writer.flush()  # what the checkpoint covers is on disk too

    def on_train_end(self, trainer: Trainer, result: TrainResult) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
