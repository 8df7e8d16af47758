"""Training health: what the Trainer does when a step goes wrong, and what it watches for.

`DivergenceGuard` keeps an in-memory copy of the last good weights and optimizer state (taken
at every checkpoint). When a loss, a gradient norm, a weight or a validation loss turns NaN or
infinite, the step is not applied: the guard restores that copy and the Trainer lowers the
learning rate. Too many rollbacks in a row end the run with `TrainingDivergedError`.
`GradientWatch` warns once per episode when the gradient norm stays far above the clipping
threshold (exploding) or near zero (vanishing) for many steps in a row.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn


class TrainingDivergedError(RuntimeError):
    """The loss kept turning NaN or infinite even after rolling back and lowering the rate."""


class DivergenceGuard:
    """Snapshot the last good state; roll back to it, counting rollbacks since that snapshot.

    Args:
        model: the model being trained.
        optimizer: its optimizer.
        max_retries: rollbacks allowed since the last good snapshot before giving up.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, max_retries: int):
        self.model = model
        self.optimizer = optimizer
        self.max_retries = max_retries
        self.strikes = 0
        self._snapshot: dict[str, Any] | None = None

    def mark_good(self) -> None:
        """Remember the current weights and optimizer state as good (after a checkpoint)."""
        self._snapshot = {
            "model": copy.deepcopy(self.model.state_dict()),
            "optimizer": copy.deepcopy(self.optimizer.state_dict()),
        }
        self.strikes = 0  # rollbacks are counted since the last good state

    def roll_back(self, what: str, step: int) -> None:
        """Drop the step's gradients and restore the last good state.

        Raises:
            TrainingDivergedError: more than ``max_retries`` rollbacks since the last good state.
        """
        self.optimizer.zero_grad(set_to_none=True)
        self.strikes += 1
        if self.strikes > self.max_retries:
            raise TrainingDivergedError(
                f"training diverged at step {step}: {what} after {self.max_retries} rollbacks "
                "with a lower learning rate; try a smaller --lr, a --clip-norm, or fp32 precision"
            )
        assert self._snapshot is not None, "mark_good() must run before the first step"
        self.model.load_state_dict(self._snapshot["model"])
        self.optimizer.load_state_dict(self._snapshot["optimizer"])


class GradientWatch:
    """Count steps in a row with exploding or vanishing gradient norms; say so once per episode.

    Args:
        clip_norm: the clipping threshold; "exploding" means ten times above it (or above 1e3
            without clipping).
        patience: steps in a row before the warning.
    """

    def __init__(self, clip_norm: float | None, patience: int = 50) -> None:
        self.limit = 10 * clip_norm if clip_norm else 1e3
        self.patience = patience
        self._run = {"exploding": 0, "vanishing": 0}

    def observe(self, norm: float, step: int) -> str | None:
        """Record one step's gradient norm; returns a warning the first time a run is long."""
        for kind, bad in (("exploding", norm > self.limit), ("vanishing", norm < 1e-7)):
            self._run[kind] = self._run[kind] + 1 if bad else 0
            if self._run[kind] == self.patience:
                advice = (
                    "lower the learning rate or clip harder"
                    if kind == "exploding"
                    else "raise the learning rate or check the data"
                )
                return (
                    f"warning: gradients look {kind} (norm {norm:.3g} for {self.patience} steps "
                    f"in a row at step {step}); {advice}"
                )
        return None
