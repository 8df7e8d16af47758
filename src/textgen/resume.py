"""Exact resume: what of a training run goes into ``last.pt``, and how it comes back.

A run stopped at step k and resumed must end bitwise identical to an uninterrupted one on the
CPU, so ``last.pt`` holds every piece of state a step reads: weights, optimizer and schedule,
the gradient scaler, the data cursor, the carried hidden state, the progress counters, every
callback's own state (by its `Callback.state_key`) and every RNG. Everything is made of tensors
and plain values, so the file loads with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textgen.checkpoint import Checkpoint
from textgen.runtime import rng_state, set_rng_state
from textgen.train_config import check_resumable
from textgen.validation import InvalidValueError

if TYPE_CHECKING:
    from textgen.trainer import Trainer


def training_state(trainer: Trainer) -> dict[str, Any]:
    """Everything ``trainer`` needs to continue exactly where it is now."""
    return {
        "step": trainer.step,
        "tokens_seen": trainer.tokens_seen,
        "clip_events": trainer.clip_events,
        "best_val_loss": trainer.best_val_loss,
        "elapsed": trainer.elapsed,
        "optimizer": trainer.optimizer.state_dict(),
        "scheduler": trainer.scheduler.state_dict(),
        "scaler": trainer.scaler.state_dict() if trainer.scaler.is_enabled() else None,
        "batcher": trainer.batcher.state_dict(),
        "hidden": trainer.state,
        "rng": rng_state(),
        "callbacks": {c.state_key: s for c in trainer.callbacks if (s := c.state_dict())},
        "time_plan": trainer.time_plan.state_dict() if trainer.time_plan is not None else None,
    }


def restore_training_state(trainer: Trainer, checkpoint: Checkpoint) -> None:
    """Put ``trainer`` back where the run saved in ``checkpoint`` (a ``last.pt``) stopped.

    Raises:
        InvalidValueError: the checkpoint holds weights only, or the trainer's settings differ
            from the run's in a setting fixed for the life of a run (`check_resumable`).
    """
    state = checkpoint.train_state
    if state is None:
        raise InvalidValueError(
            "resume", f"{checkpoint.path} holds no training state; cannot resume from it"
        )
    saved = checkpoint.metadata.get("train_config") or {}
    check_resumable(saved, trainer.config, where=str(checkpoint.path))
    trainer.model.load_state_dict(checkpoint.model_state)
    trainer.optimizer.load_state_dict(state["optimizer"])
    trainer.scheduler.load_state_dict(state["scheduler"])
    if trainer.scaler.is_enabled() and state.get("scaler"):
        trainer.scaler.load_state_dict(state["scaler"])
    trainer.batcher.load_state_dict(state["batcher"])
    hidden = state.get("hidden")
    trainer.state = tuple(h.to(trainer.device) for h in hidden) if hidden is not None else None
    trainer.step = int(state["step"])
    trainer.tokens_seen = int(state["tokens_seen"])
    trainer.clip_events = int(state["clip_events"])
    trainer.best_val_loss = state["best_val_loss"]
    trainer.elapsed = float(state["elapsed"])
    if trainer.time_plan is not None and state.get("time_plan"):
        trainer.time_plan.load_state_dict(state["time_plan"])
        if trainer.time_plan.planned is not None:
            trainer.scheduler.set_total_steps(trainer.time_plan.planned)
    saved_callbacks = state.get("callbacks") or {}
    for callback in trainer.callbacks:
        if callback.state_key in saved_callbacks:
            callback.load_state_dict(saved_callbacks[callback.state_key])
    set_rng_state(state["rng"])
