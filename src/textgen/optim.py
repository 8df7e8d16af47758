"""Optimizers, regularisers, gradient clipping and learning-rate schedules for the Trainer.

After `loss.backward()` the Trainer calls `clip_gradients` (which also reports the gradient norm,
the first thing to look at when training explodes or stalls), steps the optimizer from
`build_optimizer`, then steps the `LRScheduler` from `build_scheduler`. Schedules keep their
state in plain Python values so checkpoints load with ``torch.load(weights_only=True)``.
The update rules are written out in docs/maths.md.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
SCHEDULES = ("constant", "cosine", "step", "plateau")


def _decay_split(
    model: nn.Module, decay_embeddings: bool
) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """Split trainable parameters into (weights to decay, others); a tied tensor appears once."""
    embedding_ids = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    decay, no_decay = [], []
    for _, param in model.named_parameters():  # named_parameters() yields a shared tensor once
        if not param.requires_grad:
            continue
        is_embedding = id(param) in embedding_ids
        if param.dim() >= 2 and (decay_embeddings or not is_embedding):
            decay.append(param)
        else:  # biases, norm scales, embeddings
            no_decay.append(param)
    return decay, no_decay


def build_optimizer(
    model: nn.Module,
    name: str,
    lr: float,
    *,
    weight_decay: float = 0.0,
    momentum: float = 0.0,
    nesterov: bool = False,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    decay_embeddings: bool = False,
) -> torch.optim.Optimizer:
    """Build an optimizer by name with separate weight-decay and no-decay parameter groups.

    Weight decay applies to weight matrices (recurrent and linear layers) and, only when
    ``decay_embeddings``, to embedding tables (so also a tied head); never to biases or norms.
    ``"sgd"``, ``"adam"`` and ``"rmsprop"`` add ``weight_decay * w`` to the gradient (L2);
    ``"adamw"`` shrinks the weights directly (decoupled decay). Groups carry a ``"name"`` key
    (``"decay"`` / ``"no_decay"``); an empty group is left out.

    Args:
        model: the module whose trainable parameters are optimised.
        name: ``"sgd"``, ``"adam"``, ``"adamw"`` or ``"rmsprop"``.
        lr: learning rate (> 0).
        weight_decay: L2 / decoupled decay coefficient (>= 0).
        momentum: for ``"sgd"`` and ``"rmsprop"``, in ``[0, 1)``.
        nesterov: Nesterov momentum (``"sgd"`` with ``momentum > 0`` only).
        betas: Adam/AdamW moment decay rates, each in ``[0, 1)``.
        eps: Adam/AdamW/RMSprop denominator term (> 0).
        decay_embeddings: also decay embedding tables.

    Returns:
        A `torch.optim.Optimizer`.

    Raises:
        ValueError: unknown name or a value out of range.

    Example:
        >>> optimizer = build_optimizer(nn.Linear(4, 2), "adamw", 3e-3, weight_decay=0.1)
        >>> [group["name"] for group in optimizer.param_groups]
        ['decay', 'no_decay']
    """
    name = name.lower()
    if name not in OPTIMIZERS:
        raise ValueError(
            f"unknown optimizer {name!r}; expected one of {', '.join(map(repr, OPTIMIZERS))}"
        )
    _check_positive("lr", lr)
    if not weight_decay >= 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}")
    if not 0 <= momentum < 1:
        raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
    if momentum and name not in ("sgd", "rmsprop"):
        raise ValueError(f"momentum applies to 'sgd' and 'rmsprop', not {name!r}; use betas")
    if nesterov and (name != "sgd" or momentum == 0):
        raise ValueError("nesterov=True needs optimizer 'sgd' with momentum > 0")
    if len(betas) != 2 or not all(0 <= b < 1 for b in betas):
        raise ValueError(f"betas must be two values in [0, 1), got {betas!r}")
    _check_positive("eps", eps)

    decay, no_decay = _decay_split(model, decay_embeddings)
    groups: list[dict[str, Any]] = [
        {"params": params, "weight_decay": wd, "name": group_name}
        for params, wd, group_name in ((decay, weight_decay, "decay"), (no_decay, 0.0, "no_decay"))
        if params
    ]
    if not groups:
        raise ValueError("model has no trainable parameters to optimise")
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=nesterov)
    if name == "adam":
        return torch.optim.Adam(groups, lr=lr, betas=betas, eps=eps)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps)
    return torch.optim.RMSprop(groups, lr=lr, momentum=momentum, eps=eps)


def l1_penalty(
    model: nn.Module, coefficient: float, *, decay_embeddings: bool = False
) -> torch.Tensor:
    """``coefficient * sum(|w|)`` over the weights that `build_optimizer` would decay.

    Add it to the loss before ``backward()``; biases, norms and (by default) embeddings are left
    out, as for L2 decay.

    Args:
        model: the module being trained.
        coefficient: penalty strength (>= 0); 0 returns a zero tensor without touching weights.
        decay_embeddings: also penalise embedding tables.

    Returns:
        A scalar tensor on the model's device, differentiable w.r.t. the weights.
    """
    if not coefficient >= 0:
        raise ValueError(f"l1 coefficient must be >= 0, got {coefficient!r}")
    weights, _ = _decay_split(model, decay_embeddings)
    device = next(model.parameters()).device
    if coefficient == 0 or not weights:
        return torch.zeros((), device=device)
    return coefficient * sum((w.abs().sum() for w in weights), torch.zeros((), device=device))


@dataclass(frozen=True)
class ClipResult:
    """What `clip_gradients` saw.

    Attributes:
        norm: global L2 norm of all gradients before any clipping (may be inf/NaN: a sign to skip
            the step).
        clipped: whether any gradient was changed.
    """

    norm: float
    clipped: bool


def clip_gradients(
    parameters: Iterable[torch.Tensor] | torch.Tensor,
    *,
    max_norm: float | None = None,
    max_value: float | None = None,
) -> ClipResult:
    """Measure the global gradient norm and optionally clip, in place.

    With ``max_value`` each gradient element is clamped to ``[-max_value, max_value]`` first;
    then with ``max_norm``, if the global L2 norm exceeds it, every gradient is scaled by
    ``max_norm / norm`` so the global norm equals ``max_norm``. With neither it only measures.
    Parameters without a gradient are skipped. A non-finite norm is reported but not used to scale
    (the caller should skip that step). Reading the norm synchronises with the device.

    Args:
        parameters: tensors whose ``.grad`` to clip (e.g. ``model.parameters()``).
        max_norm: cap on the global L2 norm (> 0), or None.
        max_value: cap on each element's magnitude (> 0), or None.

    Returns:
        `ClipResult` with the norm before clipping and whether anything was clipped.

    Example:
        >>> layer = nn.Linear(2, 1)
        >>> layer(torch.ones(1, 2)).sum().mul(100).backward()
        >>> clip_gradients(layer.parameters(), max_norm=1.0).clipped
        True
    """
    if max_norm is not None:
        _check_positive("max_norm", max_norm)
    if max_value is not None:
        _check_positive("max_value", max_value)
    if isinstance(parameters, torch.Tensor):
        parameters = [parameters]
    norm, clipped = clip_gradients_(parameters, max_norm=max_norm, max_value=max_value)
    values = torch.stack([norm, clipped.to(norm.dtype)]).tolist()
    return ClipResult(norm=values[0], clipped=bool(values[1]))


def clip_gradients_(
    parameters: Iterable[torch.Tensor],
    *,
    max_norm: float | None,
    max_value: float | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`clip_gradients` without a device sync, for the training loop (inputs trusted).

    Returns:
        ``(norm, clipped)``: 0-dim float32 tensor of the global gradient norm before clipping,
        and 0-dim bool tensor, both on the gradients' device. A non-finite norm leaves the
        gradients unscaled by the norm cap (the caller skips the step).
    """
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.zeros(()), torch.zeros((), dtype=torch.bool)
    norm = _global_norm(grads)
    clipped = torch.zeros((), dtype=torch.bool, device=norm.device)
    if max_value is not None:
        largest = torch.stack([g.detach().abs().max() for g in grads]).max()
        clipped = clipped | (largest > max_value)
        for g in grads:
            g.clamp_(-max_value, max_value)
    if max_norm is not None:
        current = norm if max_value is None else _global_norm(grads)
        over = torch.isfinite(current) & (current > max_norm)
        # Scale by max_norm / norm where over the cap, by 1 elsewhere: no branch, no sync.
        scale = torch.where(over, max_norm / current, torch.ones_like(current))
        torch._foreach_mul_(grads, scale)
        clipped = clipped | over
    return norm, clipped


def _global_norm(grads: list[torch.Tensor]) -> torch.Tensor:
    norms = torch.stack([torch.linalg.vector_norm(g.detach(), dtype=torch.float32) for g in grads])
    return torch.linalg.vector_norm(norms)


class LRScheduler:
    """Learning-rate schedule stepped once per optimizer step; build it with `build_scheduler`.

    The lr of each param group is ``base_lr * warm(step) * decay(step)``. Warm-up (any schedule)
    is ``warm = (step + 1) / (warmup_steps + 1)`` for ``step < warmup_steps``, then 1. The decay:

    - ``constant``: 1.
    - ``cosine``: from 1 down to ``min_lr_ratio`` along half a cosine over
      ``total_steps - warmup_steps`` steps, then stays at ``min_lr_ratio``.
    - ``step``: ``gamma ** (step // step_size)``.
    - ``plateau``: times ``factor`` whenever `on_validation` sees no improvement for more than
      ``patience`` validations in a row (``factor=0.25``, ``patience=0`` is word_language_model).

    The decay never goes below ``min_lr_ratio``. ``step`` counts optimizer
    steps taken; the lr set at any time is the one for the next optimizer step.
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
        if self.name == "cosine":
            assert self.total_steps is not None
            span = self.total_steps - self.warmup_steps
            progress = min(1.0, max(0.0, (step - self.warmup_steps) / span))
            value = 0.5 * (1.0 + math.cos(math.pi * progress))
            return self.min_lr_ratio + (1.0 - self.min_lr_ratio) * value
        if self.name == "step":
            assert self.step_size is not None
            return max(self.gamma ** (step // self.step_size), self.min_lr_ratio)
        if self.name == "plateau":
            return max(self.plateau_scale, self.min_lr_ratio)
        return 1.0

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
            raise ValueError(f"factor must be > 0, got {factor!r}")
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
        total_steps: ``"cosine"`` only: step at which the floor is reached (> warmup_steps).
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
    name = name.lower()
    if name not in SCHEDULES:
        raise ValueError(
            f"unknown schedule {name!r}; expected one of {', '.join(map(repr, SCHEDULES))}"
        )
    _check_int("warmup_steps", warmup_steps, minimum=0)
    if not 0.0 <= min_lr_ratio <= 1.0:
        raise ValueError(f"min_lr_ratio must be in [0, 1], got {min_lr_ratio!r}")
    if name == "cosine":
        if total_steps is None:
            raise ValueError("schedule 'cosine' needs total_steps")
        _check_int("total_steps", total_steps, minimum=warmup_steps + 1)
    if name == "step":
        if step_size is None:
            raise ValueError("schedule 'step' needs step_size")
        _check_int("step_size", step_size, minimum=1)
    if not 0.0 < gamma <= 1.0:
        raise ValueError(f"gamma must be in (0, 1], got {gamma!r}")
    _check_int("patience", patience, minimum=0)
    if not 0.0 < factor < 1.0:
        raise ValueError(f"factor must be in (0, 1), got {factor!r}")
    for group in optimizer.param_groups:
        _check_positive("lr", group.get("initial_lr", group["lr"]))
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


def _check_positive(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")


def _check_int(name: str, value: int, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
