"""`TrainConfig`: everything about how to train, and the rules that follow from it.

The single source of truth for training settings: the Trainer reads it, the command line
derives its ``train`` flags from its fields (help text, defaults and choices included), and a
run folder stores it (``train_config.json``, and inside every checkpoint) so the run can be
described, resumed and reproduced. The builders that turn the settings into the optimizer,
the schedule and the batcher live here (the components themselves take plain arguments), and
so do the two policies that depend only on the settings, so the Python API and the command
line behave the same way:

* how long a run is, and which learning-rate schedule ``schedule="auto"`` means for it
  (`TrainConfig.step_limit`, `TrainConfig.resolved_schedule`);
* what a resumed run may change (`resume_config`, `FIXED_ON_RESUME`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from textgen.data import RandomWindowBatcher, StreamBatcher
from textgen.optim import OPTIMIZERS, build_optimizer
from textgen.options import config_from_dict, option
from textgen.runtime import PRECISIONS, check_device_name
from textgen.schedules import DECAYING, SCHEDULES, LRScheduler, TimePlan, build_scheduler
from textgen.validation import (
    InvalidValueError,
    check_bool,
    check_choice,
    check_float,
    check_int,
    check_optional_float,
    check_optional_int,
    check_str,
)

#: Seconds of training of a run that sets none of ``max_steps``, ``epochs`` and ``max_time``:
#: with start-up and the final validation, about five minutes of wall time. A time budget,
#: not a step count, so that a user who passes no flags gets the best model their machine can
#: make in that time (the schedule decays over the steps that fit, see `TimePlan`); give
#: ``max_steps`` for a run whose length does not depend on the machine's speed.
DEFAULT_MAX_TIME = 280.0

BATCHING = ("stream", "random")

#: Settings a resumed run must share with the run it continues: the optimizer state, the
#: schedule and the data cursor saved in ``last.pt`` were built from them. Limits, intervals,
#: clipping, the device and logging may change.
FIXED_ON_RESUME = (
    "batch_size", "seq_len", "batching", "grad_accum_steps", "optimizer", "lr", "weight_decay",
    "momentum", "nesterov", "l1", "schedule", "warmup_steps", "min_lr_ratio", "step_size",
    "gamma", "plateau_patience", "plateau_factor", "seed",
)  # fmt: skip

_LIMITS = ("max_steps", "epochs", "max_time")


@dataclass(frozen=True)
class TrainConfig:
    """How to train (the model's shape lives in `ModelConfig`, the data's in `DataConfig`).

    Stopping: the run ends at whichever of ``max_steps``, ``epochs`` and ``max_time`` comes
    first; when none is set it trains for `DEFAULT_MAX_TIME` seconds (see `time_limit`). Every field is
    validated when the config is built, so a wrong value fails before any data is read.
    """

    # -- run folder
    out_dir: str = option(
        "runs/textgen",
        "run folder for best.pt, last.pt and metrics.jsonl",
        flag="--out",
        group="run",
    )
    overwrite: bool = option(
        False, "replace a run already in the run folder instead of refusing", group="run"
    )
    # -- batches
    batch_size: int = option(
        32,
        "parallel streams (rows) per batch, per process under torchrun (the global batch is "
        "the sum over processes)",
        group="batches",
    )
    seq_len: int = option(128, "tokens per window: the truncated-BPTT length", group="batches")
    batching: str = option(
        "stream",
        "stream: contiguous streams with the state carried between windows; "
        "random: shuffled independent windows",
        choices=BATCHING,
        group="batches",
    )
    grad_accum_steps: int = option(
        1, "split each batch into this many micro-batches (same gradient)", group="batches"
    )
    # -- stopping
    max_steps: int | None = option(
        None,
        "stop after this many optimizer steps (0: no step limit)",
        group="stopping",
    )
    epochs: int | None = option(
        None, "stop after this many passes over the training text", group="stopping"
    )
    max_time: float | None = option(
        None,
        f"stop after this many seconds of training, counted across resumes (no limit of any "
        f"kind given: {DEFAULT_MAX_TIME:g})",
        group="stopping",
    )
    early_stopping_patience: int | None = option(
        None, "stop after this many validations without improvement", group="stopping"
    )
    # -- optimizer
    optimizer: str = option("adamw", "update rule", choices=OPTIMIZERS, group="optimizer")
    lr: float = option(1.2e-2, "peak learning rate", group="optimizer")
    weight_decay: float = option(
        0.01, "L2 (sgd, adam, rmsprop) or decoupled (adamw) decay of weight matrices",
        group="optimizer",
    )  # fmt: skip
    momentum: float = option(0.9, "momentum of sgd and rmsprop", group="optimizer")
    nesterov: bool = option(False, "Nesterov momentum (sgd)", group="optimizer")
    l1: float = option(0.0, "L1 penalty on weight matrices, added to the loss", group="optimizer")
    clip_norm: float | None = option(
        1.0, "clip the global gradient norm to this (none or 0: off)", group="optimizer"
    )
    clip_value: float | None = option(
        None, "clip each gradient element to [-v, v]", group="optimizer"
    )
    # -- schedule
    schedule: str = option(
        "auto",
        "learning-rate schedule; auto: warm-up and cosine decay over the run, its length in "
        "steps planned from the measured speed under a time budget",
        choices=("auto", *SCHEDULES),
        group="schedule",
    )
    warmup_steps: int = option(50, "linear warm-up steps (at most half the run)", group="schedule")
    min_lr_ratio: float = option(
        0.1, "floor of the decay, as a fraction of the peak rate", group="schedule"
    )
    step_size: int = option(1000, "step schedule: steps between decays", group="schedule")
    gamma: float = option(0.5, "step schedule: decay factor", group="schedule")
    plateau_patience: int = option(
        0, "plateau schedule: validations without improvement before a cut", group="schedule"
    )
    plateau_factor: float = option(
        0.25, "plateau schedule: multiply the rate by this at a cut", group="schedule"
    )
    # -- validation, logging and checkpoints
    eval_every: int = option(100, "validate and write last.pt every N steps", group="validation")
    eval_batches: int | None = option(
        16,
        "windows per stream scored at each validation: a fixed sample spread over the split, "
        "the same every time, so validation stays a small share of the run on any corpus "
        "(all: the whole split)",
        group="validation",
    )
    log_every: int = option(
        10, "append a training record to metrics.jsonl every N steps", group="validation"
    )
    keep_last: int = option(0, "also keep the last N step-*.pt checkpoints", group="validation")
    sample_every: int = option(
        0, "print a short sample every N steps (0: never)", group="validation"
    )
    sample_length: int = option(
        200, "tokens in each sample printed by sample_every", group="validation"
    )
    tensorboard: str | None = option(
        None,
        "write TensorBoard curves (loss, bits/char, lr, gradient norm, tokens/s, validation, a "
        "sample per validation) to this folder; '' means OUT_DIR/tensorboard",
        group="validation",
    )
    # -- hardware and reproducibility
    device: str = option("auto", "auto, cpu, cuda, cuda:N or mps", group="hardware")
    precision: str = option(
        "auto",
        "auto: bf16 where the device computes it natively, else fp32; bf16: bfloat16 autocast "
        "(CPU with AVX-512 BF16 / AMX, or CUDA); fp16: CUDA with a gradient scaler",
        choices=PRECISIONS,
        group="hardware",
    )
    seed: int = option(1337, "seeds the weights, dropout and data order", group="hardware")
    progress: bool = option(True, "no progress bar", flag="--quiet", group="hardware")
    # -- divergence
    max_nan_retries: int = option(
        3, "rollbacks after a NaN loss before the run stops with an error", group="divergence"
    )
    nan_lr_factor: float = option(
        0.5, "multiply the learning rate by this at each NaN rollback", group="divergence"
    )

    def __post_init__(self) -> None:
        check_str("out_dir", self.out_dir)
        for name in ("overwrite", "nesterov", "progress"):
            check_bool(name, getattr(self, name))
        for name in ("batch_size", "seq_len", "grad_accum_steps", "eval_every", "log_every"):
            check_int(name, getattr(self, name), minimum=1)
        for name in ("step_size", "sample_length"):
            check_int(name, getattr(self, name), minimum=1)
        for name in ("warmup_steps", "plateau_patience", "keep_last", "sample_every"):
            check_int(name, getattr(self, name), minimum=0)
        check_int("max_nan_retries", self.max_nan_retries, minimum=0)
        check_int("seed", self.seed, minimum=0)
        check_optional_int("max_steps", self.max_steps, minimum=0)
        for name in ("epochs", "eval_batches", "early_stopping_patience"):
            check_optional_int(name, getattr(self, name), minimum=1)
        check_optional_float("max_time", self.max_time, minimum=0, min_inclusive=False)
        if self.tensorboard is not None:
            check_str("tensorboard", self.tensorboard, allow_empty=True)
        check_choice("batching", self.batching, BATCHING)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_choice("schedule", self.schedule, ("auto", *SCHEDULES))
        check_choice("precision", self.precision, PRECISIONS)
        check_device_name("device", self.device)
        check_float("lr", self.lr, minimum=0, min_inclusive=False)
        for name in ("weight_decay", "l1"):
            check_float(name, getattr(self, name), minimum=0)
        check_float("momentum", self.momentum, minimum=0, maximum=1, max_inclusive=False)
        check_optional_float("clip_norm", self.clip_norm, minimum=0)
        check_optional_float("clip_value", self.clip_value, minimum=0, min_inclusive=False)
        check_float("min_lr_ratio", self.min_lr_ratio, minimum=0, maximum=1)
        check_float("gamma", self.gamma, minimum=0, maximum=1, min_inclusive=False)
        for name in ("plateau_factor", "nan_lr_factor"):
            check_float(name, getattr(self, name), minimum=0, maximum=1, min_inclusive=False,
                        max_inclusive=False)  # fmt: skip
        if self.batch_size % self.grad_accum_steps:
            raise InvalidValueError(
                "grad_accum_steps",
                f"batch_size ({self.batch_size}) must be divisible by grad_accum_steps "
                f"({self.grad_accum_steps}): the batch is split into equal micro-batches",
            )
        if self.nesterov and (self.optimizer != "sgd" or self.momentum == 0):
            raise InvalidValueError(
                "nesterov", "nesterov=True needs optimizer 'sgd' with momentum > 0"
            )
        unbounded = self.step_limit is None and self.epochs is None and self.time_limit is None
        if self.schedule in DECAYING and unbounded:
            raise InvalidValueError(
                "schedule",
                f"schedule {self.schedule!r} decays over the run's length, and this run has no "
                "limit (max_steps=0 and no epochs or max_time); set one, or use 'constant'",
            )

    @property
    def step_limit(self) -> int | None:
        """The step cap of the run: ``max_steps``; None when it is 0 or unset (epochs, the
        time budget or Ctrl-C end the run)."""
        return self.max_steps or None

    @property
    def time_limit(self) -> float | None:
        """The run's time budget in seconds: ``max_time``; `DEFAULT_MAX_TIME` when no limit of
        any kind is set (``max_steps=0`` is a choice of no step limit, so it has none)."""
        if self.max_time is not None:
            return self.max_time
        if self.max_steps is None and self.epochs is None:
            return DEFAULT_MAX_TIME
        return None

    def limit_reached(self, step: int, epoch: int, seconds: float) -> str | None:
        """Which limit a run has reached after ``step`` steps, ``epoch`` passes and
        ``seconds`` of training: ``"max_steps"``, ``"epochs"``, ``"max_time"``, or None."""
        if self.step_limit is not None and step >= self.step_limit:
            return "max_steps"
        if self.epochs is not None and epoch >= self.epochs:
            return "epochs"
        if self.time_limit is not None and seconds >= self.time_limit:
            return "max_time"
        return None

    def resolved_schedule(self) -> str:
        """The schedule to build: ``"auto"`` is cosine decay over the run's length — known in
        steps, or planned from the time budget (`plans_from_time`) — and constant for a run with
        no limit at all; any other name is itself."""
        if self.schedule != "auto":
            return self.schedule
        bounded = self.step_limit is not None or self.epochs is not None
        return "cosine" if bounded or self.time_limit is not None else "constant"

    @property
    def plans_from_time(self) -> bool:
        """True when the schedule decays over a length planned from the time budget
        (`time_limit`) and the measured speed (`textgen.schedules.TimePlan`)."""
        return self.time_limit is not None and self.resolved_schedule() in DECAYING

    def planned_steps(self, batches_per_epoch: int) -> int | None:
        """The run's length in optimizer steps when it is known: the step limit or ``epochs``
        times the batches of an epoch, whichever is smaller; None under a time budget alone."""
        limits = [] if self.step_limit is None else [self.step_limit]
        if self.epochs is not None:
            limits.append(self.epochs * batches_per_epoch)
        return min(limits) if limits else None

    def make_batcher(
        self, ids: np.ndarray, *, rank: int = 0, world_size: int = 1
    ) -> StreamBatcher | RandomWindowBatcher:
        """The batcher these settings describe, over the training ids: this process's share
        (``rank`` of ``world_size``) of batches of ``batch_size * world_size`` rows."""
        if self.batching == "random":
            return RandomWindowBatcher(
                ids,
                self.batch_size,
                self.seq_len,
                seed=self.seed,
                # micro-batches and processes need full batches; a short one leaves some empty
                drop_last=self.grad_accum_steps > 1 or world_size > 1,
                rank=rank,
                world_size=world_size,
            )
        return StreamBatcher(ids, self.batch_size, self.seq_len, rank=rank, world_size=world_size)

    def make_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        """The optimizer these settings describe (see `build_optimizer`)."""
        return build_optimizer(
            model,
            self.optimizer,
            self.lr,
            weight_decay=self.weight_decay,
            # momentum belongs to sgd and rmsprop; Adam's betas play that role
            momentum=self.momentum if self.optimizer in ("sgd", "rmsprop") else 0.0,
            nesterov=self.nesterov,
        )

    def make_scheduler(
        self, optimizer: torch.optim.Optimizer, planned_steps: int | None
    ) -> LRScheduler:
        """The learning-rate schedule these settings describe, for a run of ``planned_steps``
        (a schedule planned from time gets its length later, from a `TimePlan`)."""
        return build_scheduler(
            optimizer,
            self.resolved_schedule(),
            # a run shorter than its warm-up still gets a (shorter) warm-up and a decay
            warmup_steps=min(self.warmup_steps, (planned_steps or 10**12) // 2),
            total_steps=None if self.plans_from_time else planned_steps,
            min_lr_ratio=self.min_lr_ratio,
            step_size=self.step_size,
            gamma=self.gamma,
            patience=self.plateau_patience,
            factor=self.plateau_factor,
        )

    def make_time_plan(self, planned_steps: int | None) -> TimePlan | None:
        """The `TimePlan` of a run whose schedule decays over a time budget, else None."""
        if not self.plans_from_time:
            return None
        assert self.time_limit is not None
        return TimePlan(self.time_limit, planned_steps)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "") -> TrainConfig:
        """Build from a mapping (a run file's ``[train]`` table, a checkpoint's saved settings),
        refusing unknown keys."""
        return config_from_dict(cls, data, source=source)


def resume_config(saved: Mapping[str, Any], changes: Mapping[str, Any]) -> TrainConfig:
    """The settings of a resumed run: the saved ones with ``changes`` applied.

    Settings in `FIXED_ON_RESUME` may not change (the saved optimizer, schedule and data cursor
    depend on them). Giving a new ``epochs`` or ``max_time`` without a ``max_steps`` lifts the
    saved step cap, so "train for another hour" means what it says.

    Args:
        saved: the run's settings as stored in its checkpoint (``asdict(TrainConfig)``); keys
            this textgen no longer knows are dropped.
        changes: the settings given now.

    Raises:
        InvalidValueError: a fixed setting differs from the saved one (all such are named).
    """
    settings = {**_known(saved), **changes}
    if {"epochs", "max_time"} & set(changes) and "max_steps" not in changes:
        settings["max_steps"] = None
    config = TrainConfig.from_dict(settings)
    check_resumable(saved, config)
    return config


def check_resumable(saved: Mapping[str, Any], config: TrainConfig, where: str = "") -> None:
    """Refuse to continue a run saved with ``saved`` settings under ``config``.

    A setting in `FIXED_ON_RESUME` must be equal, except that ``schedule="auto"`` and the
    schedule it stands for are the same schedule.

    Raises:
        InvalidValueError: naming every fixed setting that differs, with both values.
    """
    old = TrainConfig.from_dict(_known(saved))
    changed = [
        f"{name} (was {getattr(old, name)!r}, now {getattr(config, name)!r})"
        for name in FIXED_ON_RESUME
        if getattr(old, name) != getattr(config, name)
        and not (name == "schedule" and old.resolved_schedule() == config.resolved_schedule())
    ]
    if changed:
        raise InvalidValueError(
            changed[0].split(" ")[0],
            f"cannot resume {where or 'the run'} with different settings: {', '.join(changed)};"
            " these are fixed for the life of a run (limits such as max_steps, epochs and "
            "max_time, the intervals, clipping and the device may change)",
        )


def _known(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Saved settings this textgen still knows (a later version may have dropped some)."""
    return {k: v for k, v in settings.items() if k in TrainConfig.__dataclass_fields__}


__all__ = [
    "BATCHING",
    "DEFAULT_MAX_TIME",
    "FIXED_ON_RESUME",
    "TrainConfig",
    "check_resumable",
    "resume_config",
]
