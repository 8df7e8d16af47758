"""The Trainer: tokenizer + data + model + loss + optimizer + schedule, composed into the main job.

`Trainer.fit` reads as the whole training story: take the next window of every stream, run the
model with the hidden state carried from the previous window (detached: truncated BPTT), compute
the cross-entropy, backpropagate, clip, step, and now and then validate and checkpoint. Everything
a run produces lands in its run folder: ``last.pt`` (resumable), ``best.pt`` (lowest validation
loss) and ``metrics.jsonl`` (one JSON object per logged step or validation).

Writing checkpoints, logging metrics and drawing the progress bar each live in one place
(`_RunOutput`) so that multi-process (DDP) training only has to teach that one place about ranks.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import signal
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from textgen.callbacks import Callback, EarlyStopping, SampleCallback, callback_state
from textgen.checkpoint import load_checkpoint, run_checkpoints, save_checkpoint
from textgen.data import Corpus, RandomWindowBatcher, StreamBatcher, TokenSplit
from textgen.evaluation import evaluate_split
from textgen.loss import compute_metrics, sequence_cross_entropy
from textgen.model import LSTMLanguageModel, State, detach_state
from textgen.optim import build_optimizer, build_scheduler, clip_gradients, l1_penalty
from textgen.runtime import resolve_device, rng_state, seed_everything, set_rng_state

logger = logging.getLogger(__name__)

_PRECISIONS = ("fp32", "bf16", "fp16")
_BATCHING = ("stream", "random")
# Settings a resumed run must share with the run it continues (the optimizer state, schedule
# and data cursor in last.pt were built from them); stopping limits and logging may change.
_FIXED_ON_RESUME = (
    "batch_size", "seq_len", "batching", "grad_accum_steps", "optimizer", "lr", "weight_decay",
    "momentum", "nesterov", "l1", "schedule", "warmup_steps", "min_lr_ratio", "step_size",
    "gamma", "plateau_patience", "plateau_factor", "seed",
)  # fmt: skip


class TrainingDivergedError(RuntimeError):
    """The loss kept turning NaN or infinite even after rolling back and lowering the rate."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything about how to train (the model's shape lives in `ModelConfig`).

    Stopping: the run ends at whichever of ``max_steps``, ``epochs`` and ``max_time`` (seconds,
    counted across resumes) comes first; at least one must be set.
    """

    out_dir: str = "runs/textgen"
    batch_size: int = 32
    seq_len: int = 128
    batching: str = "stream"
    epochs: int | None = None
    max_steps: int | None = 1300
    max_time: float | None = None
    grad_accum_steps: int = 1
    optimizer: str = "adamw"
    lr: float = 8e-3
    weight_decay: float = 0.01
    momentum: float = 0.9  # sgd and rmsprop only
    nesterov: bool = False
    l1: float = 0.0
    clip_norm: float | None = 1.0
    clip_value: float | None = None
    schedule: str = "cosine"
    warmup_steps: int = 50
    min_lr_ratio: float = 0.1
    step_size: int = 1000
    gamma: float = 0.5
    plateau_patience: int = 0
    plateau_factor: float = 0.25
    eval_every: int = 100
    eval_batches: int | None = None
    log_every: int = 10
    device: str = "auto"
    precision: str = "fp32"
    seed: int = 1337
    progress: bool = True
    sample_every: int = 0
    sample_length: int = 200
    early_stopping_patience: int | None = None
    keep_last: int = 0
    overwrite: bool = False  # replace an existing run in out_dir instead of refusing
    max_nan_retries: int = 3
    nan_lr_factor: float = 0.5

    def __post_init__(self) -> None:
        for name in ("batch_size", "seq_len", "grad_accum_steps", "eval_every", "log_every"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        for name in ("epochs", "max_steps", "eval_batches", "early_stopping_patience"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be None or an integer >= 1, got {value!r}")
        if self.max_time is not None and not self.max_time > 0:
            raise ValueError(f"max_time must be None or > 0 seconds, got {self.max_time!r}")
        if self.epochs is None and self.max_steps is None and self.max_time is None:
            raise ValueError("set at least one of epochs, max_steps or max_time")
        if self.batch_size % self.grad_accum_steps:
            raise ValueError(
                f"batch_size ({self.batch_size}) must be divisible by grad_accum_steps "
                f"({self.grad_accum_steps}): the batch is split into equal micro-batches"
            )
        if self.precision not in _PRECISIONS:
            raise ValueError(
                f"unknown precision {self.precision!r}; expected one of {', '.join(_PRECISIONS)}"
            )
        if self.batching not in _BATCHING:
            raise ValueError(
                f"unknown batching {self.batching!r}; expected one of {', '.join(_BATCHING)}"
            )
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        for name in ("clip_norm", "clip_value"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be None or > 0, got {value!r}")
        if self.l1 < 0 or self.weight_decay < 0:
            raise ValueError("l1 and weight_decay must be >= 0")
        if not 0 < self.nan_lr_factor < 1:
            raise ValueError(f"nan_lr_factor must be in (0, 1), got {self.nan_lr_factor!r}")
        if self.max_nan_retries < 0 or self.keep_last < 0 or self.sample_every < 0:
            raise ValueError("max_nan_retries, keep_last and sample_every must be >= 0")


@dataclass
class TrainResult:
    """What `Trainer.fit` returns."""

    step: int
    epoch: int
    stopped_by: str
    best_val_loss: float | None
    last_metrics: dict[str, Any] = field(default_factory=dict)


class Trainer:
    """Train a `LSTMLanguageModel` on a prepared `Corpus`.

    Args:
        model: the model to train (moved to ``config.device``).
        corpus: tokenizer plus train (and optionally validation) token streams.
        config: how to train.
        callbacks: extra `Callback` objects (sampling and early stopping are added from config).

    Example:
        >>> corpus = prepare_corpus("shakespeare")                        # doctest: +SKIP
        >>> model = LSTMLanguageModel(ModelConfig(vocab_size=corpus.tokenizer.vocab_size))
        >>> Trainer(model, corpus, TrainConfig(max_steps=100)).fit()      # doctest: +SKIP
    """

    def __init__(
        self,
        model: LSTMLanguageModel,
        corpus: Corpus,
        config: TrainConfig | None = None,
        *,
        callbacks: Sequence[Callback] = (),
    ) -> None:
        self.config = config = config or TrainConfig()
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if world_size > 1:  # several processes would overwrite one another's run folder
            raise ValueError(
                f"WORLD_SIZE={world_size}: multi-process (torchrun / DDP) training is not "
                "supported yet; run one process per run folder"
            )
        self.device = resolve_device(config.device)
        self._check_precision()
        self.model = model.to(self.device)
        self.corpus = corpus
        self.tokenizer = corpus.tokenizer
        if model.config.vocab_size < self.tokenizer.vocab_size:
            raise ValueError(
                f"model vocab_size {model.config.vocab_size} is smaller than the tokenizer's "
                f"{self.tokenizer.vocab_size}"
            )
        seed_everything(config.seed)
        self.batcher = self._make_batcher(corpus.train, config.batch_size)
        self.optimizer = build_optimizer(
            model,
            config.optimizer,
            config.lr,
            weight_decay=config.weight_decay,
            # momentum belongs to sgd and rmsprop; Adam's betas play that role
            momentum=config.momentum if config.optimizer in ("sgd", "rmsprop") else 0.0,
            nesterov=config.nesterov,
        )
        self.total_steps = self._planned_steps()
        if config.schedule == "cosine" and self.total_steps is None:
            raise ValueError("the cosine schedule needs max_steps or epochs to know its length")
        self.scheduler = build_scheduler(
            self.optimizer,
            config.schedule,
            # a run shorter than its warm-up still gets a (shorter) warm-up and a decay
            warmup_steps=min(config.warmup_steps, (self.total_steps or 10**12) // 2),
            total_steps=self.total_steps,
            min_lr_ratio=config.min_lr_ratio,
            step_size=config.step_size,
            gamma=config.gamma,
            patience=config.plateau_patience,
            factor=config.plateau_factor,
        )
        self.scaler = (
            torch.amp.GradScaler("cuda")
            if config.precision == "fp16" and self.device.type == "cuda"
            else None
        )
        self.callbacks: list[Callback] = list(callbacks)
        if config.sample_every:
            self.callbacks.append(SampleCallback(config.sample_every, config.sample_length))
        if config.early_stopping_patience:
            self.callbacks.append(EarlyStopping(config.early_stopping_patience))
        self.output = _RunOutput(Path(config.out_dir), progress=config.progress)
        # Training progress; all of it goes into last.pt.
        self.step = 0
        self.tokens_seen = 0
        self.clip_events = 0
        self.best_val_loss: float | None = None
        self.elapsed = 0.0
        self.state: State | None = None
        self.should_stop = False
        self.stop_reason = "callback"
        self._saved_at = -1
        self._good_snapshot: dict[str, Any] | None = None
        self._nan_strikes = 0
        self._grad_alarm = {"exploding": 0, "vanishing": 0}

    # ------------------------------------------------------------------ the training story
    def fit(self, *, resume: bool = False) -> TrainResult:
        """Train until a stopping condition; returns where and why it stopped.

        Args:
            resume: continue from ``out_dir/last.pt`` exactly where that run stopped (weights,
                optimizer, schedule, data position, hidden state and every RNG).

        Raises:
            CheckpointError: ``resume`` is set and ``last.pt`` is missing or unreadable.
            ValueError: ``out_dir`` already holds a run and neither ``resume`` nor
                ``config.overwrite`` is set (a run is never replaced by accident).
            TrainingDivergedError: the loss stayed non-finite after ``max_nan_retries`` rollbacks.
        """
        config = self.config
        if resume:
            self._restore(load_checkpoint(self.output.last_path))
        elif run_checkpoints(self.output.out_dir) and not config.overwrite:
            raise ValueError(
                f"{self.output.out_dir} already holds a run; continue it with resume=True "
                "(--resume), start afresh with overwrite=True (--overwrite), or use another "
                "out_dir (--out)"
            )
        stopped_by = "max_steps"
        last_metrics: dict[str, Any] = {}
        with self._signals_save_and_stop():  # from here on, Ctrl-C / SIGTERM save last.pt
            self.output.start(config, total=self.total_steps, initial=self.step, fresh=not resume)
            self._good_snapshot = self._snapshot()
            start = time.perf_counter() - self.elapsed
            batches = self._batches()
            while True:
                reason = self._stop_reason(start)
                if reason:
                    stopped_by = reason
                    break
                x, y = next(batches)
                metrics = self.train_step(x, y)
                self.elapsed = time.perf_counter() - start
                metrics.update(epoch=self.batcher.epoch, elapsed=round(self.elapsed, 3))
                if metrics.get("skipped"):  # a non-finite loss was rolled back: record it only
                    self.output.log(metrics)
                    continue
                last_metrics = metrics
                if self.step % config.log_every == 0:
                    self.output.log(metrics)
                self.output.progress(metrics)
                for callback in self.callbacks:
                    callback.on_step_end(self, metrics)
                if self.step % config.eval_every == 0:
                    self._validate_and_checkpoint()
            if last_metrics and self.step % config.log_every:  # the final step is always logged
                self.output.log(last_metrics)
            if self._saved_at != self.step:
                if stopped_by in ("signal", "callback"):
                    self._save("last")  # an interruption: keep the exact state, skip validation
                else:
                    self._validate_and_checkpoint()
        self.output.close()
        return TrainResult(
            self.step, self.batcher.epoch, stopped_by, self.best_val_loss, last_metrics
        )

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, Any]:
        """One optimizer step on a ``(B, T)`` batch; returns its metrics.

        The batch is split into ``grad_accum_steps`` equal micro-batches along B (each with its
        own slice of the carried state) whose gradients add up to the full batch's.
        """
        config = self.config
        self.model.train()
        x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
        random_windows = self.config.batching == "random"  # independent windows: fresh state
        if self.state is None or random_windows or self.state[0].shape[1] != x.shape[0]:
            self.state = self.model.init_state(x.shape[0])
        # Truncated BPTT: the state carries the history forward, but gradients stop here.
        state = detach_state(self.state)
        started = time.perf_counter()
        total_loss, new_states = 0.0, []
        micro = x.shape[0] // config.grad_accum_steps
        for i in range(config.grad_accum_steps):
            rows = slice(i * micro, (i + 1) * micro)
            micro_state = tuple(s[:, rows] for s in state)
            with self._autocast():
                logits, next_state = self.model(x[rows], micro_state)
                loss = sequence_cross_entropy(logits.float(), y[rows])
            new_states.append(next_state)
            value = loss.item()  # one device sync serves the NaN check and the report
            if not math.isfinite(value):
                return self._recover_from_nan(f"loss is {value}")
            total_loss += value / config.grad_accum_steps  # reported without the penalty
            if config.l1:
                loss = loss + l1_penalty(self.model, config.l1)
            scaled = loss / config.grad_accum_steps
            (self.scaler.scale(scaled) if self.scaler else scaled).backward()
        if self.scaler:
            self.scaler.unscale_(self.optimizer)
        clip = clip_gradients(
            self.model.parameters(), max_norm=config.clip_norm, max_value=config.clip_value
        )
        if not math.isfinite(clip.norm) and not self.scaler:
            return self._recover_from_nan(f"gradient norm is {clip.norm}")
        lr = self.scheduler.lr  # the rate this step uses
        if self.scaler:
            self.scaler.step(self.optimizer)  # skips the step itself on inf/NaN gradients
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        self.state = tuple(torch.cat(parts, dim=1) for parts in zip(*new_states, strict=True))
        self.step += 1
        self.clip_events += int(clip.clipped)
        tokens = x.numel()
        self.tokens_seen += tokens
        self._watch_gradients(clip.norm)
        seconds = max(time.perf_counter() - started, 1e-9)
        return {
            "step": self.step,
            "train_loss": total_loss,
            "train_bpc": _bits_per_char(total_loss, self.corpus.train),
            "lr": lr,
            "grad_norm": clip.norm,
            "clipped": bool(clip.clipped),
            "clip_events": self.clip_events,
            "tokens_per_s": tokens / seconds,
        }

    @torch.no_grad()
    def evaluate(self, split: TokenSplit | None = None) -> dict[str, Any]:
        """Loss and bits per character on ``split`` (default: the validation split).

        Changes no weights and leaves the training state (and RNGs) untouched.
        """
        split = split if split is not None else (self.corpus.val or self.corpus.train)
        return evaluate_split(
            self.model,
            split,
            batch_size=self.config.batch_size,
            seq_len=self.config.seq_len,
            max_batches=self.config.eval_batches,
            autocast=self._autocast,
        )

    # ------------------------------------------------------------------ helpers of fit
    def _batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        while True:
            if self.batcher.batch == 0:
                self.state = None  # a new epoch restarts every stream from its beginning
            yield from self.batcher.iter_epoch()

    def _stop_reason(self, start: float) -> str | None:
        config = self.config
        if self.should_stop:
            return "signal" if self.output.signal_received else self.stop_reason
        if config.max_steps is not None and self.step >= config.max_steps:
            return "max_steps"
        if config.epochs is not None and self.batcher.epoch >= config.epochs:
            return "epochs"
        if config.max_time is not None and time.perf_counter() - start >= config.max_time:
            return "max_time"
        return None

    def _validate_and_checkpoint(self) -> None:
        if not all(torch.isfinite(p).all() for p in self.model.parameters()):
            self._recover_from_nan("weights are not finite")  # never save a broken model
            return
        metrics: dict[str, Any] = {
            "step": self.step,
            "epoch": self.batcher.epoch,
            "elapsed": round(self.elapsed, 3),
        }
        if self.corpus.val is not None:
            result = self.evaluate()
            if not math.isfinite(result["loss"]):
                self._recover_from_nan(f"validation loss is {result['loss']}")
                return
            metrics.update(
                val_loss=result["loss"],
                val_bpc=result["bits_per_char"],
                val_perplexity=result["perplexity"],
            )
            self.output.log(metrics)
            self.output.message(
                f"step {self.step}: val loss {result['loss']:.4f}, "
                f"bpc {_fmt(result['bits_per_char'])}, ppl {result['perplexity']:.2f}"
            )
            improved = self.best_val_loss is None or result["loss"] < self.best_val_loss
            if improved:
                self.best_val_loss = result["loss"]
            self.scheduler.on_validation(result["loss"])
            if improved:
                self._save("best")
            for callback in self.callbacks:
                callback.on_evaluate_end(self, metrics)
        else:
            self._save("best")  # nothing to compare against: the latest weights are the best known
        self._save("last")
        if self.config.keep_last:
            self._save(f"step-{self.step:08d}")
            self.output.prune(self.config.keep_last)
        self._good_snapshot = self._snapshot()
        self._nan_strikes = 0  # rollbacks are counted since the last good checkpoint

    def _save(self, name: str) -> Path:
        train_state = self._train_state() if name != "best" else None
        path = self.output.save(
            name,
            model=self.model,
            tokenizer=self.tokenizer,
            train_state=train_state,
            metadata={
                "step": self.step,
                "epoch": self.batcher.epoch,
                "best_val_loss": self.best_val_loss,
                "tokens_seen": self.tokens_seen,
                "train_config": asdict(self.config),
            },
        )
        if name == "last":
            self._saved_at = self.step
        for callback in self.callbacks:
            callback.on_checkpoint_saved(self, path)
        return path

    def _train_state(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "tokens_seen": self.tokens_seen,
            "clip_events": self.clip_events,
            "best_val_loss": self.best_val_loss,
            "elapsed": self.elapsed,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler else None,
            "batcher": self.batcher.state_dict(),
            "hidden": self.state,
            "rng": rng_state(),
            "callbacks": {
                type(c).__name__: s for c in self.callbacks if (s := callback_state(c)) is not None
            },
            "finished_by": "early_stopping" if self._early_stopped() else None,
        }

    def _restore(self, checkpoint: Any) -> None:
        state = checkpoint.train_state
        if state is None:
            raise ValueError(f"{checkpoint.path} holds no training state; cannot resume from it")
        saved_config = checkpoint.metadata.get("train_config") or {}
        changed = [
            f"{name} (was {saved_config[name]!r}, now {getattr(self.config, name)!r})"
            for name in _FIXED_ON_RESUME
            if name in saved_config and saved_config[name] != getattr(self.config, name)
        ]
        if changed:
            raise ValueError(
                f"cannot resume {checkpoint.path} with different settings: {', '.join(changed)}; "
                "these are fixed for the life of a run (limits such as max_steps, epochs, "
                "max_time, eval_every and clipping may change)"
            )
        self.model.load_state_dict(checkpoint.model_state)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.batcher.load_state_dict(state["batcher"])
        hidden = state.get("hidden")
        self.state = tuple(h.to(self.device) for h in hidden) if hidden is not None else None
        self.step = int(state["step"])
        self.tokens_seen = int(state["tokens_seen"])
        self.clip_events = int(state["clip_events"])
        self.best_val_loss = state["best_val_loss"]
        self.elapsed = float(state["elapsed"])
        saved_callbacks = state.get("callbacks") or {}
        for callback in self.callbacks:
            saved = saved_callbacks.get(type(callback).__name__)
            if saved:
                callback.__dict__.update(saved)
        if state.get("finished_by"):  # an early-stopped run stays finished
            self.should_stop, self.stop_reason = True, str(state["finished_by"])
        self._saved_at = self.step  # last.pt is exactly this state: no need to write it again
        set_rng_state(state["rng"])

    def _early_stopped(self) -> bool:
        return self.should_stop and self.stop_reason == "early_stopping"

    def _snapshot(self) -> dict[str, Any]:
        """In-memory copy of the last good state, for rolling back after a NaN."""
        return {
            "model": copy.deepcopy(self.model.state_dict()),
            "optimizer": copy.deepcopy(self.optimizer.state_dict()),
        }

    def _recover_from_nan(self, what: str) -> dict[str, Any]:
        """Skip the step, roll back to the last good weights and lower the learning rate."""
        self.optimizer.zero_grad(set_to_none=True)
        self._nan_strikes += 1
        if self._nan_strikes > self.config.max_nan_retries:
            raise TrainingDivergedError(
                f"training diverged at step {self.step + 1}: {what} after "
                f"{self.config.max_nan_retries} rollbacks with a lower learning rate; try a "
                f"smaller --lr, a --clip-norm, or fp32 precision"
            )
        assert self._good_snapshot is not None
        self.model.load_state_dict(self._good_snapshot["model"])
        self.optimizer.load_state_dict(self._good_snapshot["optimizer"])
        self.state = None
        self.scheduler.scale_base_lr(self.config.nan_lr_factor)  # also re-applies the schedule
        self.output.warn(
            f"step {self.step + 1}: {what}; step skipped, rolled back to the last good state, "
            f"learning rate now {self.scheduler.lr:.3g}"
        )
        return {"step": self.step, "skipped": True, "reason": what, "lr": self.scheduler.lr}

    def _watch_gradients(self, norm: float) -> None:
        """Warn once per episode when norms stay far above the clip threshold or near zero."""
        limit = 10 * self.config.clip_norm if self.config.clip_norm else 1e3
        for kind, bad in (("exploding", norm > limit), ("vanishing", norm < 1e-7)):
            self._grad_alarm[kind] = self._grad_alarm[kind] + 1 if bad else 0
            if self._grad_alarm[kind] == 50:
                self.output.warn(
                    f"warning: gradients look {kind} (norm {norm:.3g} for 50 steps in a row "
                    f"at step {self.step}); "
                    + (
                        "lower the learning rate or clip harder"
                        if kind == "exploding"
                        else "raise the learning rate or check the data"
                    )
                )

    def _planned_steps(self) -> int | None:
        steps = [] if self.config.max_steps is None else [self.config.max_steps]
        if self.config.epochs is not None:
            steps.append(self.config.epochs * self.batcher.batches_per_epoch)
        return min(steps) if steps else None

    def _make_batcher(
        self, split: TokenSplit, batch_size: int
    ) -> StreamBatcher | RandomWindowBatcher:
        if self.config.batching == "random":
            return RandomWindowBatcher(
                split.ids,
                batch_size,
                self.config.seq_len,
                seed=self.config.seed,
                # micro-batches need full batches; a short last batch would leave some empty
                drop_last=self.config.grad_accum_steps > 1,
            )
        return StreamBatcher(split.ids, batch_size, self.config.seq_len)

    def _check_precision(self) -> None:
        precision = self.config.precision
        if precision == "fp16" and self.device.type != "cuda":
            raise ValueError(
                f"precision 'fp16' needs a CUDA device (got {self.device}); use 'bf16' on CPU"
            )
        if (
            precision == "bf16"
            and self.device.type == "cuda"
            and not torch.cuda.is_bf16_supported()
        ):
            raise ValueError(f"precision 'bf16' is not supported on {self.device}; use 'fp16'")

    def _autocast(self) -> AbstractContextManager[Any]:
        precision = self.config.precision
        if precision == "fp32":
            return nullcontext()
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    @contextmanager
    def _signals_save_and_stop(self) -> Iterator[None]:
        """On SIGINT/SIGTERM finish the current step, write ``last.pt`` and return."""

        def handler(signum: int, frame: Any) -> None:
            self.output.signal_received = signum
            self.should_stop = True

        try:
            previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
        except ValueError:  # not the main thread: signals cannot be caught here
            yield
            return
        try:
            yield
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)


class _RunOutput:
    """The run folder: checkpoints, ``metrics.jsonl`` and the progress bar, all in one place.

    Under multi-process training only the main process will write here; that rule belongs here.
    """

    def __init__(self, out_dir: Path, *, progress: bool) -> None:
        self.out_dir = out_dir
        self.show_progress = progress
        self.bar: Any = None
        self.signal_received: int | None = None

    @property
    def last_path(self) -> Path:
        return self.out_dir / "last.pt"

    @property
    def metrics_path(self) -> Path:
        return self.out_dir / "metrics.jsonl"

    def start(self, config: TrainConfig, *, total: int | None, initial: int, fresh: bool) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if not fresh and self.metrics_path.exists():
            # Steps logged after last.pt was written will run again: keep them only once.
            lines = self.metrics_path.read_text(encoding="utf-8").splitlines(keepends=True)
            kept = [line for line in lines if _record_step(line) <= initial]
            self.metrics_path.write_text("".join(kept), encoding="utf-8")
        if fresh:  # a new run (or an explicit overwrite): nothing of an older run may linger
            for old in [self.metrics_path, *run_checkpoints(self.out_dir)]:
                old.unlink(missing_ok=True)
        (self.out_dir / "train_config.json").write_text(json.dumps(asdict(config), indent=2) + "\n")
        self.bar = tqdm(
            total=total,
            initial=initial,
            disable=not self.show_progress,
            unit="step",
            dynamic_ncols=True,
        )

    def log(self, record: dict[str, Any]) -> None:
        with self.metrics_path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")

    def progress(self, metrics: dict[str, Any]) -> None:
        if self.bar is None or metrics.get("skipped"):
            return
        self.bar.update(1)
        if metrics["step"] % 5 == 0:
            self.bar.set_postfix(
                loss=f"{metrics['train_loss']:.3f}",
                bpc=_fmt(metrics["train_bpc"]),
                tok_s=f"{metrics['tokens_per_s']:.0f}",
                lr=f"{metrics['lr']:.2e}",
                gnorm=f"{metrics['grad_norm']:.2f}",
                refresh=False,
            )

    def message(self, text: str) -> None:
        logger.info(text)
        if self.show_progress:
            tqdm.write(text)

    def warn(self, text: str) -> None:
        logger.warning(text)
        if self.show_progress:
            tqdm.write(text)

    def save(self, name: str, **contents: Any) -> Path:
        return save_checkpoint(self.out_dir / f"{name}.pt", **contents)

    def prune(self, keep: int) -> None:
        for old in sorted(self.out_dir.glob("step-*.pt"))[:-keep]:
            old.unlink()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _record_step(line: str) -> float:
    """Step of a metrics.jsonl line; a line cut short by a crash counts as past every step."""
    try:
        return float(json.loads(line).get("step", 0))
    except (json.JSONDecodeError, AttributeError, TypeError, ValueError):
        return math.inf


def _bits_per_char(loss: float, split: TokenSplit) -> float | None:
    """Bits per character of a per-token loss, by the split's characters-per-token ratio."""
    if not split.num_chars:
        return None
    totals = compute_metrics(loss * split.num_tokens, split.num_tokens, split.num_chars)
    return totals["bits_per_char"]


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
