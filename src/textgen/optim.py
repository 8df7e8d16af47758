"""Optimizers, regularisers and gradient clipping for the Trainer.

After `loss.backward()` the Trainer calls `clip_gradients` (which also reports the gradient norm,
the first thing to look at when training explodes or stalls), steps the optimizer from
`build_optimizer`, then steps the learning-rate schedule (`textgen.schedules`). The update rules
are written out in docs/maths.md.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from textgen.validation import (
    InvalidValueError,
    check_bool,
    check_choice,
    check_float,
)

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")


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
    name = check_choice("optimizer", name.lower() if isinstance(name, str) else name, OPTIMIZERS)
    check_float("lr", lr, minimum=0, min_inclusive=False)
    check_float("weight_decay", weight_decay, minimum=0)
    check_float("momentum", momentum, minimum=0, maximum=1, max_inclusive=False)
    check_bool("nesterov", nesterov)
    if momentum and name not in ("sgd", "rmsprop"):
        raise InvalidValueError(
            "momentum", f"momentum applies to 'sgd' and 'rmsprop', not {name!r}; use betas"
        )
    if nesterov and (name != "sgd" or momentum == 0):
        raise InvalidValueError("nesterov", "nesterov=True needs optimizer 'sgd' with momentum > 0")
    if len(betas) != 2:
        raise InvalidValueError("betas", f"betas must be two values in [0, 1), got {betas!r}")
    for beta in betas:
        check_float("betas", beta, minimum=0, maximum=1, max_inclusive=False)
    check_float("eps", eps, minimum=0, min_inclusive=False)

    decay, no_decay = _decay_split(model, decay_embeddings)
    groups: list[dict[str, Any]] = [
        {"params": params, "weight_decay": wd, "name": group_name}
        for params, wd, group_name in ((decay, weight_decay, "decay"), (no_decay, 0.0, "no_decay"))
        if params
    ]
    if not groups:
        raise InvalidValueError("model", "model has no trainable parameters to optimise")
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
    check_float("l1 coefficient", coefficient, minimum=0)
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
        check_float("max_norm", max_norm, minimum=0, min_inclusive=False)
    if max_value is not None:
        check_float("max_value", max_value, minimum=0, min_inclusive=False)
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
