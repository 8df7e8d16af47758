"""The Trainer: tokenizer + data + model + loss + optimizer + schedule, composed into the main job.

`Trainer.fit` reads as the whole training story: take the next window of every stream, run the
model with the hidden state carried from the previous window (detached: truncated BPTT), compute
the cross-entropy, backpropagate, clip, step, and now and then validate and checkpoint.
`Trainer.train_step` is one optimizer step: forward and backward per micro-batch, then clip and
step. What a run writes goes through `RunFolder` (``textgen.run_folder``); what it does when a
step goes wrong lives in `textgen.health`; how to train is a `TrainConfig`.

Under ``torchrun`` the same code runs in every process (`textgen.distributed`): each trains on
its own share of the streams, `DistributedDataParallel` averages the gradients, and every
decision (skip a step, roll back, validate, stop) is taken on values that are the same on all
processes, so no process waits in a collective another one skipped. Rank 0 writes the run.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel

from textgen import distributed
from textgen.callbacks import Callback, EarlyStopping, SampleCallback, TensorBoardCallback
from textgen.checkpoint import load_checkpoint
from textgen.data import Corpus, TokenSplit
from textgen.evaluation import evaluate_split, unk_warning
from textgen.health import DivergenceGuard, GradientWatch, TrainingDivergedError
from textgen.loss import compute_metrics, sequence_cross_entropy
from textgen.model import LSTMLanguageModel, State, detach_state
from textgen.optim import clip_gradients_, l1_penalty
from textgen.resume import restore_training_state, training_state
from textgen.run_folder import RunFolder
from textgen.runtime import (
    autocast,
    check_precision,
    on_stop_signals,
    resolve_precision,
    seed_everything,
)
from textgen.train_config import TrainConfig
from textgen.validation import InvalidTypeError, InvalidValueError

__all__ = ["TrainConfig", "TrainResult", "Trainer", "TrainingDivergedError"]

#: Why a run stops, least to most pressing: under torchrun the ranks stop together for the
#: most pressing reason any of them has (a reason a callback gave counts as "callback").
_STOP_ORDER = (None, "callback", "early_stopping", "max_steps", "epochs", "max_time", "signal")


def _stop_rank(reason: str | None) -> int:
    return _STOP_ORDER.index(reason) if reason in _STOP_ORDER else 1


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

    Under ``torchrun`` (``WORLD_SIZE`` > 1) it joins the process group (`distributed.setup`),
    ``config.batch_size`` is the batch of each process and the model trains wrapped in
    `DistributedDataParallel`; ``trainer.model`` stays the plain model.

    Raises:
        ValueError: the device or precision is not available here, or the model's vocabulary
            is smaller than the tokenizer's.
        DistributedError: a ``torchrun`` launch that cannot work here (see `distributed.setup`).

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
        self.device = distributed.setup(config.device)  # this process's GPU under torchrun
        #: processes training together (1 without torchrun) and this one's rank among them
        self.world_size, self.rank = distributed.world_size(), distributed.rank()
        #: the precision this run computes in ("auto" resolved for this device)
        self.precision = resolve_precision(config.precision, self.device)
        check_precision(self.precision, self.device)
        self.model = model.to(self.device)
        self.corpus = corpus
        self.tokenizer = corpus.tokenizer
        if model.config.vocab_size < self.tokenizer.vocab_size:
            raise InvalidValueError(
                "vocab_size",
                f"model vocab_size {model.config.vocab_size} is smaller than the tokenizer's "
                f"{self.tokenizer.vocab_size}",
            )
        # Each rank its own dropout stream (rank 0's is a single process's); the weights come
        # from rank 0 when DDP wraps the model.
        seed_everything(config.seed + self.rank)
        self.batcher = config.make_batcher(
            corpus.train.ids, rank=self.rank, world_size=self.world_size
        )
        self.train_model = self._wrap_for_training(self.model)
        self.optimizer = config.make_optimizer(model)
        self.total_steps = config.planned_steps(self.batcher.batches_per_epoch)
        self.scheduler = config.make_scheduler(self.optimizer, self.total_steps)
        self.time_plan = config.make_time_plan(self.total_steps)  # a decay over a time budget
        # fp16 needs loss scaling; with any other precision the scaler is a no-op.
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")
        self.callbacks: list[Callback] = list(callbacks)
        if config.sample_every and self.rank == 0:  # under torchrun, rank 0 prints and writes
            self.callbacks.append(SampleCallback(config.sample_every, config.sample_length))
        if config.early_stopping_patience:
            self.callbacks.append(EarlyStopping(config.early_stopping_patience))
        if config.tensorboard is not None and self.rank == 0:
            log_dir = config.tensorboard or str(Path(config.out_dir) / "tensorboard")
            self.callbacks.append(TensorBoardCallback(log_dir, every=config.log_every))
        self.run_folder = RunFolder(
            Path(config.out_dir), progress=config.progress, main=self.rank == 0
        )
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
        self._warned_unk = False

    # ------------------------------------------------------------------ the training story
    def fit(self, *, resume: bool = False) -> TrainResult:
        """Train until a stopping condition; returns where and why it stopped.

        Args:
            resume: continue from ``out_dir/last.pt`` exactly where that run stopped (weights,
                optimizer, schedule, data position, hidden state, callbacks and every RNG).

        Raises:
            CheckpointError: ``resume`` is set and ``last.pt`` is missing or unreadable.
            RunFolderBusyError: another process is training into ``out_dir``.
            StorageError: a checkpoint or ``metrics.jsonl`` could not be written (disk full,
                no permission); the previous ``last.pt`` is intact, resume from it.
            ValueError: ``out_dir`` already holds a run and neither ``resume`` nor
                ``config.overwrite`` is set (a run is never replaced by accident), or the
                resumed run was made with different fixed settings.
            TrainingDivergedError: the loss stayed non-finite after ``max_nan_retries`` rollbacks.
        """
        try:
            with ExitStack() as held:
                # One writer per run folder, for the whole run (the kernel frees it if we die);
                # under torchrun rank 0 holds it, and a busy folder stops every rank.
                distributed.everywhere(lambda: held.enter_context(self.run_folder.lock))
                result = self._fit(resume)
            distributed.barrier()  # no rank leaves the group while another still talks to it
            return result
        finally:
            distributed.shutdown()  # under torchrun, leave the group textgen joined (also on errors)

    def _fit(self, resume: bool) -> TrainResult:
        config, folder = self.config, self.run_folder
        if resume:  # every rank reads last.pt (a shared folder); a failure stops them all
            distributed.everywhere(
                lambda: restore_training_state(self, load_checkpoint(folder.last_path))
            )
            self._saved_at = self.step  # last.pt is exactly this state: no need to write it again
        elif not config.overwrite:
            distributed.on_main(folder.refuse_existing_run)
        last_metrics: dict[str, Any] = {}
        # From here on, Ctrl-C / SIGTERM finish the current step, save last.pt and return.
        with on_stop_signals(lambda: self.request_stop("signal")):
            distributed.on_main(
                lambda: folder.start(
                    config, total=self.total_steps, initial=self.step, fresh=not resume
                )
            )
            try:
                folder.log(self._start_record(resume))
                self.guard.mark_good()
                for callback in self.callbacks:
                    callback.on_train_begin(self)
                start = time.perf_counter() - self.elapsed
                batches = self._batches()
                while (stopped_by := self._stop_reason(start)) is None:
                    metrics = self.train_step(*next(batches))
                    self.elapsed = self._seconds_since(start)
                    if self.time_plan is not None:
                        self._follow_time_plan(self.time_plan.observe(self.step, self.elapsed))
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
        summary = torch.stack([loss, norm, clipped.float()])
        if self.world_size > 1:
            # Every rank must decide alike (step, skip, roll back): the loss is averaged over
            # the ranks; the gradients, hence norm and clip flag, already are (DDP), so only
            # rank 0's are added (times 0 elsewhere, which keeps a NaN a NaN on every rank).
            main = float(self.rank == 0)
            weights = torch.tensor([1 / self.world_size, main, main], device=summary.device)
            summary = distributed.all_reduce(summary * weights)
        loss_value, norm_value, clipped_value = summary.tolist()
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
        tokens = x.numel() * self.world_size  # every rank took a batch of the same shape
        self.tokens_seen += tokens
        warning = self.gradient_watch.observe(norm_value, self.step)
        if warning:
            self.run_folder.warn(warning)
        return {
            "step": self.step,
            "train_loss": loss_value,
            "train_bpc": self._train_bpc(loss_value),
            "lr": lr,
            "grad_norm": norm_value,
            "clipped": bool(clipped_value),
            "clip_events": self.clip_events,
            "tokens_per_s": tokens / max(time.perf_counter() - started, 1e-9),
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
            with self._autocast(), self._gradient_sync(last=i == parts - 1):
                logits, micro_state = self.train_model(
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

        Changes no weights and leaves the training state (and RNGs) untouched. Under
        ``torchrun`` every rank must call it: each scores its share of the streams and all
        report the same figures.
        """
        split = split if split is not None else (self.corpus.val or self.corpus.train)
        return evaluate_split(
            self.model,
            split,
            batch_size=self.config.batch_size,
            seq_len=self.config.seq_len,
            max_batches=self.config.eval_batches,
            autocast=self._autocast,
            unk_id=self.tokenizer.unk_id,
            rank=distributed.rank(),  # live: after fit the group is gone, one process scores all
            world_size=distributed.world_size(),
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
        reason = self._stop_request
        if reason is None:
            seconds = time.perf_counter() - start
            reason = self.config.limit_reached(self.step, self.batcher.epoch, seconds)
        if self.world_size == 1:
            return reason
        # A signal, a callback or the clock may reach one rank a step before another: stop
        # all of them together, for the most pressing reason any of them has.
        code = torch.tensor([_stop_rank(reason)], device=self.device)
        if int(distributed.all_reduce(code, "max").item()) == 0:
            return None  # the common case: one small collective per step
        return max(distributed.all_gather(reason), key=_stop_rank)  # the first rank's on ties

    def _seconds_since(self, start: float) -> float:
        """Training time so far; under torchrun the slowest rank's, so that the time budget
        and the schedule planned from it are the same on every rank."""
        seconds = time.perf_counter() - start
        if self.world_size == 1:
            return seconds
        clock = torch.tensor([seconds], dtype=torch.float64, device=self.device)
        return float(distributed.all_reduce(clock, "max").item())

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
                "val_tokens": result["tokens"],
                "val_scope": "full" if result["complete"] else "sample",
            }
            if "unk_share" in result:
                metrics.update(
                    val_unk_tokens=result["unk_tokens"], val_unk_share=result["unk_share"]
                )
                warning = unk_warning(result, "the validation text")
                if warning and not self._warned_unk:
                    self._warned_unk = True
                    self.run_folder.warn(warning)
            self.run_folder.log_validation(metrics)
            improved = self.best_val_loss is None or result["loss"] < self.best_val_loss
            if improved:
                self.best_val_loss = result["loss"]
                self._save("best")
            self.scheduler.on_validation(result["loss"])
            if self.time_plan is not None:  # the speed now includes validation time
                self._follow_time_plan(self.time_plan.replan(self.step, self.elapsed))
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
        """Write ``<name>.pt`` (rank 0 only; every rank calls this at the same step)."""
        train_state = training_state(self) if name != "best" else None  # gathers every rank's
        metadata = {
            "step": self.step,
            "epoch": self.batcher.epoch,
            "best_val_loss": self.best_val_loss,
            "tokens_seen": self.tokens_seen,
            "device": str(self.device),
            "precision": self.precision,
            "world_size": self.world_size,
            "global_batch_size": self.config.batch_size * self.world_size,
            "train_config": asdict(self.config),
            # how the text was cut into documents: samplers start a new one from end-of-text
            "documents": self.corpus.documents,
        }
        save = self.run_folder.save
        distributed.on_main(
            lambda: save(
                name,
                model=self.model,
                tokenizer=self.tokenizer,
                train_state=train_state,
                metadata=metadata,
            )
        )
        path = self.run_folder.out_dir / f"{name}.pt"
        if name == "last":
            self._saved_at = self.step
        for callback in self.callbacks:
            callback.on_checkpoint_saved(self, path)
        return path

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

    def _start_record(self, resume: bool) -> dict[str, Any]:
        """The ``metrics.jsonl`` record that says how this (part of the) run computes."""
        return {
            "step": self.step,
            "event": "resume" if resume else "start",
            "device": str(self.device),
            "precision": self.precision,
            "requested_precision": self.config.precision,
            "world_size": self.world_size,
            "global_batch_size": self.config.batch_size * self.world_size,
        }

    def _follow_time_plan(self, planned: int | None) -> None:
        """Give the schedule the length a time plan worked out (and the bar its new total)."""
        if planned is not None:
            self.scheduler.set_total_steps(planned)
            self.run_folder.set_total(planned)

    def _autocast(self) -> AbstractContextManager[Any]:
        return autocast(self.precision, self.device)

    def _wrap_for_training(self, model: LSTMLanguageModel) -> torch.nn.Module:
        """The module training calls: ``model`` itself, or under torchrun ``model`` in
        `DistributedDataParallel` (which starts every rank from rank 0's weights and averages
        the gradients in backward). Evaluation, checkpoints and callbacks use ``model``, so
        checkpoints keep one process's format (no ``module.`` prefixes)."""
        if self.world_size == 1:
            return model
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=device_ids)

    def _gradient_sync(self, *, last: bool) -> AbstractContextManager[Any]:
        """Under DDP, average the gradients once per step: skip it for all but the last
        micro-batch (the sum of the micro-batches' gradients is the same either way)."""
        if last or not isinstance(self.train_model, DistributedDataParallel):
            return nullcontext()
        return self.train_model.no_sync()

    def _train_bpc(self, loss: float) -> float | None:
        """Bits per character of a per-token loss, by the training text's characters per token."""
        train = self.corpus.train
        if not train.num_chars:
            return None
        return compute_metrics(loss * train.num_tokens, train.num_tokens, train.num_chars)[
            "bits_per_char"
        ]
