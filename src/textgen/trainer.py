"""The Trainer: tokenizer + data + model + loss + optimizer + schedule, composed into the main job.

`Trainer.fit` reads as the whole training story: take the next window of every stream, run the
model with the hidden state carried from the previous window (detached: truncated BPTT), compute
the cross-entropy, backpropagate, clip, step, and now and then validate and checkpoint.
`Trainer.train_step` is one optimizer step: forward and backward per micro-batch, then clip and
step. What a run writes goes through `RunFolder` (``textgen.run_folder``); what it does when a
step goes wrong lives in `textgen.health`; how to train is a `TrainConfig`.
"""

from __future__ import annotations

import math
import os
import signal
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from textgen.callbacks import Callback, EarlyStopping, SampleCallback
from textgen.checkpoint import Checkpoint, load_checkpoint, run_checkpoints
from textgen.data import Corpus, RandomWindowBatcher, StreamBatcher, TokenSplit
from textgen.evaluation import evaluate_split
from textgen.health import DivergenceGuard, GradientWatch, TrainingDivergedError
from textgen.loss import compute_metrics, sequence_cross_entropy
from textgen.model import LSTMLanguageModel, State, detach_state
from textgen.optim import build_optimizer, build_scheduler, clip_gradients_, l1_penalty
from textgen.run_folder import RunFolder
from textgen.runtime import (
    autocast,
    check_precision,
    resolve_device,
    rng_state,
    seed_everything,
    set_rng_state,
)
from textgen.train_config import FIXED_ON_RESUME, TrainConfig
from textgen.validation import InvalidTypeError, InvalidValueError

__all__ = ["TrainConfig", "TrainResult", "Trainer", "TrainingDivergedError"]


@dataclass
class TrainResult:
    """What `Trainer.fit` returns.

    Attributes:
        step: optimizer steps taken in all (across resumes).
        epoch: passes over the training text completed.
        stopped_by: why the run ended: ``"max_steps"``, ``"epochs"``, ``"max_time"``,
            ``"signal"`` (Ctrl-C / SIGTERM), ``"early_stopping"``, or the reason a callback
            gave to `Trainer.request_stop` (``"callback"`` by default).
        best_val_loss: lowest validation loss seen (nats/token), or None without validation.
        last_metrics: the metrics of the last step taken.
    """

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
        config: how to train (default `TrainConfig()`).
        callbacks: extra `Callback` objects (sampling and early stopping are added from config).

    Raises:
        ValueError: the device or precision is not available here, or the model's vocabulary
            is smaller than the tokenizer's.

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
        self.config = config = TrainConfig() if config is None else config
        if not isinstance(config, TrainConfig):
            raise InvalidTypeError("config", f"config must be a TrainConfig, got {config!r}")
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if world_size > 1:  # several processes would overwrite one another's run folder
            raise ValueError(
                f"WORLD_SIZE={world_size}: multi-process (torchrun / DDP) training is not "
                "supported yet; run one process per run folder"
            )
        self.device = resolve_device(config.device)
        check_precision(config.precision, self.device)
        self.model = model.to(self.device)
        self.corpus = corpus
        self.tokenizer = corpus.tokenizer
        if model.config.vocab_size < self.tokenizer.vocab_size:
            raise InvalidValueError(
                "vocab_size",
                f"model vocab_size {model.config.vocab_size} is smaller than the tokenizer's "
                f"{self.tokenizer.vocab_size}",
            )
        seed_everything(config.seed)
        self.batcher = self._make_batcher(corpus.train)
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
        self.scheduler = build_scheduler(
            self.optimizer,
            config.resolved_schedule(self.total_steps),
            # a run shorter than its warm-up still gets a (shorter) warm-up and a decay
            warmup_steps=min(config.warmup_steps, (self.total_steps or 10**12) // 2),
            total_steps=self.total_steps,
            min_lr_ratio=config.min_lr_ratio,
            step_size=config.step_size,
            gamma=config.gamma,
            patience=config.plateau_patience,
            factor=config.plateau_factor,
        )
        # fp16 needs loss scaling; with any other precision the scaler is a no-op.
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=config.precision == "fp16")
        self.callbacks: list[Callback] = list(callbacks)
        if config.sample_every:
            self.callbacks.append(SampleCallback(config.sample_every, config.sample_length))
        if config.early_stopping_patience:
            self.callbacks.append(EarlyStopping(config.early_stopping_patience))
        self.run_folder = RunFolder(Path(config.out_dir), progress=config.progress)
        self.guard = DivergenceGuard(self.model, self.optimizer, config.max_nan_retries)
        self.gradient_watch = GradientWatch(config.clip_norm)
        # Training progress; all of it goes into last.pt.
        self.step = 0
        self.tokens_seen = 0
        self.clip_events = 0
        self.best_val_loss: float | None = None
        self.elapsed = 0.0
        self.state: State | None = None
        self._stop_request: str | None = None
        self._saved_at = -1

    # ------------------------------------------------------------------ the training story
    def fit(self, *, resume: bool = False) -> TrainResult:
        """Train until a stopping condition; returns where and why it stopped.

        Args:
            resume: continue from ``out_dir/last.pt`` exactly where that run stopped (weights,
                optimizer, schedule, data position, hidden state, callbacks and every RNG).

        Raises:
            CheckpointError: ``resume`` is set and ``last.pt`` is missing or unreadable.
            ValueError: ``out_dir`` already holds a run and neither ``resume`` nor
                ``config.overwrite`` is set (a run is never replaced by accident), or the
                resumed run was made with different fixed settings.
            TrainingDivergedError: the loss stayed non-finite after ``max_nan_retries`` rollbacks.
        """
        config, folder = self.config, self.run_folder
        if resume:
            self._restore(load_checkpoint(folder.last_path))
        elif run_checkpoints(folder.out_dir) and not config.overwrite:
            raise InvalidValueError(
                "out_dir",
                f"{folder.out_dir} already holds a run; continue it with resume=True "
                "(--resume), start afresh with overwrite=True (--overwrite), or use another "
                "out_dir (--out)",
            )
        last_metrics: dict[str, Any] = {}
        with self._signals_save_and_stop():  # from here on, Ctrl-C / SIGTERM save last.pt
            folder.start(config, total=self.total_steps, initial=self.step, fresh=not resume)
            try:
                self.guard.mark_good()
                for callback in self.callbacks:
                    callback.on_train_begin(self)
                start = time.perf_counter() - self.elapsed
                batches = self._batches()
                while (stopped_by := self._stop_reason(start)) is None:
                    metrics = self.train_step(*next(batches))
                    self.elapsed = time.perf_counter() - start
                    metrics.update(epoch=self.batcher.epoch, elapsed=round(self.elapsed, 3))
                    if metrics.get("skipped"):  # a non-finite step was rolled back: record it
                        folder.log(metrics)
                        continue
                    last_metrics = metrics
                    if self.step % config.log_every == 0:
                        folder.log(metrics)
                    folder.progress(metrics, refresh_postfix=self.step % 5 == 0)
                    for callback in self.callbacks:
                        callback.on_step_end(self, metrics)
                    if self.step % config.eval_every == 0:
                        self._validate_and_checkpoint()
                if last_metrics and self.step % config.log_every:  # the last step is logged
                    folder.log(last_metrics)
                if self._saved_at != self.step:
                    if stopped_by in ("signal", "callback"):
                        self._save("last")  # an interruption: keep the exact state, no validation
                    else:
                        self._validate_and_checkpoint()
                result = TrainResult(
                    self.step, self.batcher.epoch, stopped_by, self.best_val_loss, last_metrics
                )
                for callback in self.callbacks:
                    callback.on_train_end(self, result)
            finally:
                folder.close()
        return result

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, Any]:
        """One optimizer step on a ``(B, T)`` batch: forward and backward per micro-batch,
        then clip and step. Returns the step's metrics (or a ``skipped`` record after a
        rollback).

        The batch is split into ``grad_accum_steps`` equal micro-batches along B, each with its
        own slice of the carried state, whose gradients add up to the full batch's. The step
        reads one value from the device (loss, gradient norm and clip flag together).
        """
        config = self.config
        started = time.perf_counter()
        self.model.train()
        x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
        loss, next_state = self._forward_backward(x, y, self._carried_state(x.shape[0]))
        self.scaler.unscale_(self.optimizer)  # clip true gradients (no-op unless fp16)
        norm, clipped = clip_gradients_(
            self.model.parameters(), max_norm=config.clip_norm or None, max_value=config.clip_value
        )
        loss_value, norm_value, clipped_value = torch.stack([loss, norm, clipped.float()]).tolist()
        if not math.isfinite(loss_value):
            return self._roll_back(f"loss is {loss_value}")
        if not math.isfinite(norm_value) and not self.scaler.is_enabled():
            return self._roll_back(f"gradient norm is {norm_value}")
        lr = self.scheduler.lr  # the rate this step uses
        self.scaler.step(self.optimizer)  # with fp16, skips the update on inf/NaN gradients
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        self.state = next_state
        self.step += 1
        self.clip_events += int(clipped_value)
        self.tokens_seen += x.numel()
        warning = self.gradient_watch.observe(norm_value, self.step)
        if warning:
            self.run_folder.warn(warning)
        return {
            "step": self.step,
            "train_loss": loss_value,
            "train_bpc": _bits_per_char(loss_value, self.corpus.train),
            "lr": lr,
            "grad_norm": norm_value,
            "clipped": bool(clipped_value),
            "clip_events": self.clip_events,
            "tokens_per_s": x.numel() / max(time.perf_counter() - started, 1e-9),
        }

    def _forward_backward(
        self, x: torch.Tensor, y: torch.Tensor, state: State
    ) -> tuple[torch.Tensor, State]:
        """Forward and backward over the micro-batches; returns (mean loss, state after).

        The loss is a 0-dim tensor on the device (no sync); it excludes the L1 penalty, which
        only shapes the gradient.
        """
        parts = self.config.grad_accum_steps
        micro = x.shape[0] // parts
        total = torch.zeros((), device=self.device)
        states: list[State] = []
        for i in range(parts):
            rows = slice(i * micro, (i + 1) * micro)
            with self._autocast():
                logits, micro_state = self.model(
                    x[rows], tuple(s[:, rows] for s in state), check=False
                )
                loss = sequence_cross_entropy(logits.float(), y[rows])
            states.append(micro_state)
            total += loss.detach()
            if self.config.l1:
                loss = loss + l1_penalty(self.model, self.config.l1)
            self.scaler.scale(loss / parts).backward()
        if parts == 1:
            return total, states[0]
        return total / parts, tuple(torch.cat(s, dim=1) for s in zip(*states, strict=True))

    def _carried_state(self, batch_size: int) -> State:
        """The state this batch starts from: the previous window's, detached (truncated BPTT:
        the state carries the history forward, gradients stop at the window boundary); zeros
        for random windows, at an epoch start and when the batch size changed."""
        state = self.state
        if state is None or self.config.batching == "random" or state[0].shape[1] != batch_size:
            return self.model.init_state(batch_size)
        return detach_state(state)

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

    # ------------------------------------------------------------------ stopping
    def request_stop(self, reason: str = "callback") -> None:
        """End the run cleanly after the current step (``last.pt`` is written); ``reason``
        becomes `TrainResult.stopped_by`."""
        if self._stop_request is None:
            self._stop_request = reason

    @property
    def should_stop(self) -> bool:
        """True once a stop was requested; setting it to True is ``request_stop("callback")``."""
        return self._stop_request is not None

    @should_stop.setter
    def should_stop(self, value: bool) -> None:
        if value:
            self.request_stop()
        else:
            self._stop_request = None

    def _stop_reason(self, start: float) -> str | None:
        config = self.config
        if self._stop_request is not None:
            return self._stop_request
        limit = config.step_limit
        if limit is not None and self.step >= limit:
            return "max_steps"
        if config.epochs is not None and self.batcher.epoch >= config.epochs:
            return "epochs"
        if config.max_time is not None and time.perf_counter() - start >= config.max_time:
            return "max_time"
        return None

    # ------------------------------------------------------------------ validation, saving
    def _validate_and_checkpoint(self) -> None:
        if not all(torch.isfinite(p).all() for p in self.model.parameters()):
            self._roll_back("weights are not finite")  # never save a broken model
            return
        if self.corpus.val is not None:
            result = self.evaluate()
            if not math.isfinite(result["loss"]):
                self._roll_back(f"validation loss is {result['loss']}")
                return
            metrics: dict[str, Any] = {
                "step": self.step,
                "epoch": self.batcher.epoch,
                "elapsed": round(self.elapsed, 3),
                "val_loss": result["loss"],
                "val_bpc": result["bits_per_char"],
                "val_perplexity": result["perplexity"],
            }
            self.run_folder.log(metrics)
            self.run_folder.message(
                f"step {self.step}: val loss {result['loss']:.4f}, "
                f"bpc {_fmt(result['bits_per_char'])}, ppl {result['perplexity']:.2f}"
            )
            improved = self.best_val_loss is None or result["loss"] < self.best_val_loss
            if improved:
                self.best_val_loss = result["loss"]
                self._save("best")
            self.scheduler.on_validation(result["loss"])
            for callback in self.callbacks:
                callback.on_evaluate_end(self, metrics)
        else:
            self._save("best")  # nothing to compare against: the latest weights are the best known
        self._save("last")
        if self.config.keep_last:
            self._save(f"step-{self.step:08d}")
            self.run_folder.prune(self.config.keep_last)
        self.guard.mark_good()

    def _save(self, name: str) -> Path:
        path = self.run_folder.save(
            name,
            model=self.model,
            tokenizer=self.tokenizer,
            train_state=self._train_state() if name != "best" else None,
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
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
            "batcher": self.batcher.state_dict(),
            "hidden": self.state,
            "rng": rng_state(),
            "callbacks": {c.state_key: s for c in self.callbacks if (s := c.state_dict())},
        }

    def _restore(self, checkpoint: Checkpoint) -> None:
        state = checkpoint.train_state
        if state is None:
            raise InvalidValueError(
                "resume", f"{checkpoint.path} holds no training state; cannot resume from it"
            )
        self._check_fixed_settings(checkpoint)
        self.model.load_state_dict(checkpoint.model_state)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler.is_enabled() and state.get("scaler"):
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
            if callback.state_key in saved_callbacks:
                callback.load_state_dict(saved_callbacks[callback.state_key])
        self._saved_at = self.step  # last.pt is exactly this state: no need to write it again
        set_rng_state(state["rng"])

    def _check_fixed_settings(self, checkpoint: Checkpoint) -> None:
        saved = TrainConfig.from_dict(
            {
                k: v
                for k, v in (checkpoint.metadata.get("train_config") or {}).items()
                if k in TrainConfig.__dataclass_fields__
            }
        )
        planned = self.total_steps
        changed = [
            f"{name} (was {getattr(saved, name)!r}, now {getattr(self.config, name)!r})"
            for name in FIXED_ON_RESUME
            if getattr(saved, name) != getattr(self.config, name)
            # "auto" and the schedule it stands for are the same schedule
            and not (
                name == "schedule"
                and saved.resolved_schedule(planned) == self.config.resolved_schedule(planned)
            )
        ]
        if changed:
            raise InvalidValueError(
                changed[0].split(" ")[0],
                f"cannot resume {checkpoint.path} with different settings: {', '.join(changed)};"
                " these are fixed for the life of a run (limits such as max_steps, epochs, "
                "max_time, eval_every and clipping may change)",
            )

    # ------------------------------------------------------------------ helpers of fit
    def _roll_back(self, what: str) -> dict[str, Any]:
        """Skip the step, restore the last good weights and lower the learning rate."""
        self.guard.roll_back(what, self.step + 1)
        self.state = None
        self.scheduler.scale_base_lr(self.config.nan_lr_factor)  # also re-applies the schedule
        self.run_folder.warn(
            f"step {self.step + 1}: {what}; step skipped, rolled back to the last good state, "
            f"learning rate now {self.scheduler.lr:.3g}"
        )
        return {"step": self.step, "skipped": True, "reason": what, "lr": self.scheduler.lr}

    def _batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        while True:
            if self.batcher.batch == 0:
                self.state = None  # a new epoch restarts every stream from its beginning
            yield from self.batcher.iter_epoch()

    def _planned_steps(self) -> int | None:
        limits = [] if self.config.step_limit is None else [self.config.step_limit]
        if self.config.epochs is not None:
            limits.append(self.config.epochs * self.batcher.batches_per_epoch)
        return min(limits) if limits else None

    def _make_batcher(self, split: TokenSplit) -> StreamBatcher | RandomWindowBatcher:
        config = self.config
        if config.batching == "random":
            return RandomWindowBatcher(
                split.ids,
                config.batch_size,
                config.seq_len,
                seed=config.seed,
                # micro-batches need full batches; a short last batch would leave some empty
                drop_last=config.grad_accum_steps > 1,
            )
        return StreamBatcher(split.ids, config.batch_size, config.seq_len)

    def _autocast(self) -> AbstractContextManager[Any]:
        return autocast(self.config.precision, self.device)

    @contextmanager
    def _signals_save_and_stop(self) -> Iterator[None]:
        """On SIGINT/SIGTERM finish the current step, write ``last.pt`` and return."""

        def handler(signum: int, frame: Any) -> None:
            self.request_stop("signal")

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


def _bits_per_char(loss: float, split: TokenSplit) -> float | None:
    """Bits per character of a per-token loss, by the split's characters-per-token ratio."""
    if not split.num_chars:
        return None
    totals = compute_metrics(loss * split.num_tokens, split.num_tokens, split.num_chars)
    return totals["bits_per_char"]


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
