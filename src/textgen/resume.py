"""Exact resume: what of a training run goes into ``last.pt``, and how it comes back.

A run stopped at step k and resumed must end bitwise identical to an uninterrupted one on the
CPU, so ``last.pt`` holds every piece of state a step reads: weights, optimizer and schedule,
the gradient scaler, the data cursor, the carried hidden state, the progress counters, every
callback's own state (by its `Callback.state_key`) and every RNG. Everything is made of tensors
and plain values, so the file loads with ``torch.load(weights_only=True)``.

Under ``torchrun`` the weights, optimizer and schedule are the same on every process, but the
data share, the carried state and the RNG streams are each process's own: ``last.pt`` (written
by rank 0) also holds every rank's part under ``"ranks"``, and a resume with the same number
of processes gives each its own part back. A resume with another number of processes would
change the global batch and which streams each process reads, so it is refused.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textgen import distributed
from textgen.checkpoint import Checkpoint
from textgen.runtime import rng_state, set_rng_state
from textgen.train_config import check_resumable
from textgen.validation import InvalidValueError

if TYPE_CHECKING:
    from textgen.trainer import Trainer


def training_state(trainer: Trainer) -> dict[str, Any]:
    """Everything ``trainer`` needs to continue exactly where it is now.

    Under ``torchrun`` every rank must call it (the ranks' own parts are gathered to rank 0);
    the result is complete on rank 0 only.
    """
    own = {
        "batcher": trainer.batcher.state_dict(),
        # on the CPU: rank 0 receives the other ranks' tensors, and may be on another machine
        "hidden": None if trainer.state is None else tuple(h.cpu() for h in trainer.state),
        "rng": rng_state(),
    }
    ranks = distributed.gather_to_main(own) if trainer.world_size > 1 else None
    return {
        "step": trainer.step,
        "tokens_seen": trainer.tokens_seen,
        "clip_events": trainer.clip_events,
        "best_val_loss": trainer.best_val_loss,
        "elapsed": trainer.elapsed,
        "optimizer": trainer.optimizer.state_dict(),
        "scheduler": trainer.scheduler.state_dict(),
        "scaler": trainer.scaler.state_dict() if trainer.scaler.is_enabled() else None,
        **own,  # rank 0's, as one process saves them
        "world_size": trainer.world_size,
        "ranks": ranks,
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
    own = _own_part(state, trainer, str(checkpoint.path))
    trainer.model.load_state_dict(checkpoint.model_state)
    trainer.optimizer.load_state_dict(state["optimizer"])
    trainer.scheduler.load_state_dict(state["scheduler"])
    if trainer.scaler.is_enabled() and state.get("scaler"):
        trainer.scaler.load_state_dict(state["scaler"])
    trainer.batcher.load_state_dict(own["batcher"])
    hidden = own.get("hidden")
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
    set_rng_state(own["rng"])


def check_world_size(state: dict[str, Any], now: int, batch_size: int, where: str) -> int:
    """The number of processes that saved ``state`` (a ``last.pt``'s ``train_state``), when
    ``now`` processes may continue it.

    Raises:
        InvalidValueError: ``now`` differs: the global batch, the streams of each process and
            the RNG streams would change, and the run would not continue exactly.
    """
    saved = int(state.get("world_size") or 1)  # saved before torchrun support: one process
    if saved != now:
        launch = f"torchrun --nproc-per-node {saved}" if saved > 1 else "without torchrun"
        raise InvalidValueError(
            "world_size",
            f"cannot resume {where} with {now} process(es): it was trained by {saved}, and "
            f"resuming with {now} would change the global batch from {saved * batch_size} to "
            f"{now * batch_size} rows, which streams each process reads and the RNG streams, "
            f"so the run would not continue exactly; resume it with {saved} process(es) "
            f"({launch}), or start a new run from its weights",
        )
    return saved


def _own_part(state: dict[str, Any], trainer: Trainer, where: str) -> dict[str, Any]:
    """This rank's data cursor, carried state and RNG streams from a ``last.pt``.

    Raises:
        InvalidValueError: the run was saved by another number of processes.
    """
    saved = check_world_size(state, trainer.world_size, trainer.config.batch_size, where)
    if saved == 1:
        return state
    return dict(state["ranks"][trainer.rank])
