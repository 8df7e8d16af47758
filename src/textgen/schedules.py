"""Learning-rate schedules: warm-up, then constant, cosine, step or plateau decay.

The Trainer steps the schedule once per optimizer step, right after ``optimizer.step()``; the
schedule writes the rate of the *next* step into the optimizer's param groups. Its state is
plain Python values, so checkpoints load with ``torch.load(weights_only=True)``. The formulas
are in docs/maths.md.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from textgen.validation import InvalidValueError, check_choice, check_float, check_int

SCHEDULES = ("constant", "cosine", "linear", "step", "plateau")
#: Schedules that decay over a known length (``total_steps``).
DECAYING = ("cosine", "linear")


class LRScheduler:
    """Learning-rate schedule stepped once per optimizer step; build it with `build_scheduler`.

    The lr of each param group is ``base_lr * warm(step) * decay(step)``. Warm-up (any schedule)
    is ``warm = (step + 1) / (warmup_steps + 1)`` for ``step < warmup_steps``, then 1. The decay:

    - ``constant``: 1.
    - ``cosine``: from 1 down to ``min_lr_ratio`` along half a cosine over
      ``total_steps - warmup_steps`` steps, then stays at ``min_lr_ratio``.
    - ``linear``: the same, along a straight line.
    - ``step``: ``gamma ** (step // step_size)``.
    - ``plateau``: times ``factor`` whenever `on_validation` sees no improvement for more than
      ``patience`` validations in a row (``factor=0.25``, ``patience=0`` is word_language_model).

    The decay never goes below ``min_lr_ratio``. ``step`` counts optimizer
    steps taken; the lr set at any time is the one for the next optimizer step. A decaying
    schedule built without ``total_steps`` holds its peak rate after the warm-up until
    `set_total_steps` gives it a length (the Trainer does so from a time budget, `TimePlan`).
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        name: str,
        *,
        warmup_steps: int,
        total_steps: int | None,
        min_lr_ratio: float,
        step_size: int | None,
        gamma: float,
        patience: int,
        factor: float,
    ) -> None:
        self.optimizer = optimizer
        self.name = name
        self.warmup_steps = warmup_steps
        self.total_steps = total_steps
        self.min_lr_ratio = min_lr_ratio
        self.step_size = step_size
        self.gamma = gamma
        self.patience = patience
        self.factor = factor
        self.base_lrs = [float(g.setdefault("initial_lr", g["lr"])) for g in optimizer.param_groups]
        self.step_count = 0
        self.plateau_scale = 1.0
        self.best: float | None = None
        self.bad_validations = 0
        self._apply()

    def multiplier(self, step: int) -> float:
        """Multiplier of the base lr used for optimizer step number ``step`` (0-based)."""
        warm = (step + 1) / (self.warmup_steps + 1) if step < self.warmup_steps else 1.0
        return warm * self._decay(step)

    def _decay(self, step: int) -> float:
        if self.name in DECAYING:
            if self.total_steps is None:  # length not planned yet
                return 1.0
            span = max(self.total_steps - self.warmup_steps, 1)
            progress = min(1.0, max(0.0, (step - self.warmup_steps) / span))
            if self.name == "cosine":
                value = 0.5 * (1.0 + math.cos(math.pi * progress))
            else:
                value = 1.0 - progress
            return self.min_lr_ratio + (1.0 - self.min_lr_ratio) * value
        if self.name == "step":
            assert self.step_size is not None
            return max(self.gamma ** (step // self.step_size), self.min_lr_ratio)
        if self.name == "plateau":
            return max(self.plateau_scale, self.min_lr_ratio)
        return 1.0

    def set_total_steps(self, total_steps: int) -> None:
        """Give a decaying schedule its length (or a new one) from now on; the rate of the next
        step follows at once. Used when the length is planned from a time budget.

        Raises:
            ValueError: ``total_steps`` is not an integer >= 1.
        """
        self.total_steps = check_int("total_steps", total_steps, minimum=1)
        self._apply()

    def step(self) -> None:
        """Advance one optimizer step (call right after ``optimizer.step()``)."""
        self.step_count += 1
        self._apply()

    def on_validation(self, val_loss: float) -> bool:
        """Record a validation loss; for ``plateau`` reduce the lr when it stops improving.

        Returns:
            True when this call reduced the learning rate.
        """
        val_loss = float(val_loss)
        if self.best is None or val_loss < self.best:  # NaN never counts as improvement
            self.best = val_loss
            self.bad_validations = 0
            return False
        self.bad_validations += 1
        if self.name != "plateau" or self.bad_validations <= self.patience:
            return False
        self.bad_validations = 0
        before = self.multiplier(self.step_count)
        self.plateau_scale *= self.factor
        self._apply()
        return self.multiplier(self.step_count) < before

    @property
    def lr(self) -> float:
        """Current learning rate of the first param group."""
        return float(self.optimizer.param_groups[0]["lr"])

    def get_last_lr(self) -> list[float]:
        """Current learning rate of every param group."""
        return [float(g["lr"]) for g in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        """Schedule position as plain Python values (safe for ``weights_only=True`` loading)."""
        return {
            "name": self.name,
            "step_count": self.step_count,
            "base_lrs": list(self.base_lrs),
            "plateau_scale": self.plateau_scale,
            "best": self.best,
            "bad_validations": self.bad_validations,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a `state_dict` and set the optimizer's lr to match it."""
        if state.get("name") != self.name:
            raise ValueError(
                f"scheduler state is for schedule {state.get('name')!r}, not {self.name!r}"
            )
        if len(state["base_lrs"]) != len(self.optimizer.param_groups):
            raise ValueError(
                f"scheduler state has {len(state['base_lrs'])} base lrs for "
                f"{len(self.optimizer.param_groups)} param groups"
            )
        self.step_count = int(state["step_count"])
        self.base_lrs = [float(lr) for lr in state["base_lrs"]]
        self.plateau_scale = float(state["plateau_scale"])
        self.best = None if state["best"] is None else float(state["best"])
        self.bad_validations = int(state["bad_validations"])
        self._apply()

    def scale_base_lr(self, factor: float) -> None:
        """Multiply every base lr by ``factor`` for the rest of the run (e.g. after a NaN)."""
        if not factor > 0:
            raise InvalidValueError("factor", f"factor must be > 0, got {factor!r}")
        self.base_lrs = [lr * factor for lr in self.base_lrs]
        self._apply()

    def _apply(self) -> None:
        multiplier = self.multiplier(self.step_count)
        for group, base_lr in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
            group["lr"] = base_lr * multiplier


def build_scheduler(
    optimizer: torch.optim.Optimizer,
    name: str = "constant",
    *,
    warmup_steps: int = 0,
    total_steps: int | None = None,
    min_lr_ratio: float = 0.0,
    step_size: int | None = None,
    gamma: float = 0.1,
    patience: int = 0,
    factor: float = 0.25,
) -> LRScheduler:
    """Build a learning-rate schedule by name (see `LRScheduler` for the formulas).

    Args:
        optimizer: optimizer whose param groups' ``lr`` (the base lr) the schedule scales.
        name: ``"constant"``, ``"cosine"``, ``"step"`` or ``"plateau"``.
        warmup_steps: linear warm-up length in optimizer steps (>= 0).
        total_steps: ``"cosine"`` and ``"linear"``: the step at which the floor is reached
            (> warmup_steps); None to give it later with `LRScheduler.set_total_steps`.
        min_lr_ratio: floor as a fraction of the base lr, in ``[0, 1]``.
        step_size: ``"step"`` only: steps between decays (> 0).
        gamma: ``"step"`` decay factor, in ``(0, 1]``.
        patience: ``"plateau"``: validations without improvement tolerated before a cut (>= 0).
        factor: ``"plateau"`` lr multiplier per cut, in ``(0, 1)``; 0.25 divides by 4.

    Returns:
        An `LRScheduler` that has already set the lr for the first optimizer step.

    Raises:
        ValueError: unknown name, a missing option for the schedule, or a value out of range.

    Example:
        >>> optimizer = build_optimizer(nn.Linear(2, 2), "sgd", 1.0)
        >>> scheduler = build_scheduler(optimizer, "cosine", warmup_steps=1, total_steps=3)
        >>> [scheduler.lr, (scheduler.step(), scheduler.lr)[1]]
        [0.5, 1.0]
    """
    name = check_choice("schedule", name.lower() if isinstance(name, str) else name, SCHEDULES)
    check_int("warmup_steps", warmup_steps, minimum=0)
    check_float("min_lr_ratio", min_lr_ratio, minimum=0, maximum=1)
    if name in DECAYING and total_steps is not None:
        check_int("total_steps", total_steps, minimum=warmup_steps + 1)
    if name == "step":
        if step_size is None:
            raise InvalidValueError("step_size", "schedule 'step' needs step_size")
        check_int("step_size", step_size, minimum=1)
    check_float("gamma", gamma, minimum=0, maximum=1, min_inclusive=False)
    check_int("patience", patience, minimum=0)
    check_float("factor", factor, minimum=0, maximum=1, min_inclusive=False, max_inclusive=False)
    for group in optimizer.param_groups:
        check_float("lr", group.get("initial_lr", group["lr"]), minimum=0, min_inclusive=False)
    return LRScheduler(
        optimizer,
        name,
        warmup_steps=warmup_steps,
        total_steps=total_steps,
        min_lr_ratio=min_lr_ratio,
        step_size=step_size,
        gamma=gamma,
        patience=patience,
        factor=factor,
    )


class TimePlan:
    """The length in steps of a run bounded by time, planned from its measured speed.

    A decaying schedule needs to know when the run ends; under a time budget that is a number
    of seconds, not of steps. The plan measures the seconds per step from step ``measure_from``
    on (the first steps pay for start-up) and, from step ``plan_at``, plans ``step + remaining
    seconds / seconds per step`` (never past ``step_cap``). It plans again at every validation,
    with a rate that by then includes the time validation takes, so the decay ends close to the
    budget. The plan is part of ``last.pt`` (`state_dict`), so a resumed run continues it.

    Args:
        max_time: the run's budget in seconds (counted across resumes).
        step_cap: a step limit the run also has, or None.
        measure_from: first step of the speed measurement.
        plan_at: step of the first plan (keep it inside the warm-up, whose rates do not depend
            on the length).

    Example:
        >>> plan = TimePlan(100.0, None, measure_from=0, plan_at=10)
        >>> plan.observe(0, 0.0), plan.observe(10, 10.0)
        (None, 100)
    """

    def __init__(
        self, max_time: float, step_cap: int | None, *, measure_from: int = 3, plan_at: int = 20
    ) -> None:
        self.max_time = max_time
        self.step_cap = step_cap
        self.measure_from = measure_from
        self.plan_at = max(plan_at, measure_from + 1)
        self.mark: tuple[int, float] | None = None  # (step, elapsed) where measuring began
        self.planned: int | None = None

    def observe(self, step: int, elapsed: float) -> int | None:
        """Call after each step (``step`` taken, ``elapsed`` seconds); returns the planned total
        when this call made the first plan, else None."""
        if self.mark is None and step >= self.measure_from:
            self.mark = (step, elapsed)
        if self.planned is None and step >= self.plan_at:
            return self.replan(step, elapsed)
        return None

    def replan(self, step: int, elapsed: float) -> int | None:
        """Plan again from the speed measured so far (validation included); returns the plan,
        or None when nothing has been measured yet."""
        if self.mark is None or step <= self.mark[0] or elapsed <= self.mark[1]:
            return None
        seconds_per_step = (elapsed - self.mark[1]) / (step - self.mark[0])
        planned = step + max(1, round((self.max_time - elapsed) / seconds_per_step))
        self.planned = planned if self.step_cap is None else min(planned, self.step_cap)
        return self.planned

    def state_dict(self) -> dict[str, Any]:
        """The plan and where its measurement began: plain values."""
        return {"mark": None if self.mark is None else list(self.mark), "planned": self.planned}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Take back a `state_dict` (a resumed run continues the plan)."""
        mark = state.get("mark")
        self.mark = None if mark is None else (int(mark[0]), float(mark[1]))
        self.planned = None if state.get("planned") is None else int(state["planned"])


__all__ = ["DECAYING", "SCHEDULES", "LRScheduler", "TimePlan", "build_scheduler"]
