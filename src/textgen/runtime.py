"""Devices, seeds and random-number-generator state: the runtime facts every other part shares.

The Trainer and the CLI resolve a device once and pass it down; checkpoints capture and restore
every RNG (Python, NumPy, torch CPU and CUDA) through `rng_state` / `set_rng_state` so a resumed
run draws the same random numbers as an uninterrupted one.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Turn ``"auto" | "cpu" | "cuda" | "cuda:N" | "mps"`` into a usable `torch.device`.

    ``"auto"`` means CUDA when available, else CPU.

    Raises:
        ValueError: the device string is malformed or the device is not available here.
    """
    name = str(device) if isinstance(device, torch.device) else str(device).strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(name)
    except RuntimeError as error:
        raise ValueError(
            f"invalid device {device!r}; expected 'auto', 'cpu', 'cuda' or 'cuda:N'"
        ) from error
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device {device!r} requested but CUDA is not available on this machine"
            )
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ValueError(
                f"device {device!r} requested but only {torch.cuda.device_count()} CUDA device(s) exist"
            )
    elif resolved.type == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError(
                f"device {device!r} requested but MPS is not available on this machine"
            )
    elif resolved.type != "cpu":
        raise ValueError(
            f"unsupported device {device!r}; expected 'auto', 'cpu', 'cuda' or 'cuda:N'"
        )
    return resolved


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators (CPU and every CUDA device)."""
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device


def rng_state() -> dict[str, Any]:
    """Snapshot of every global RNG, made only of tensors, ints, strings and lists.

    The result is safe for ``torch.load(weights_only=True)``: no NumPy arrays or pickled objects.
    """
    np_kind, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "python": _to_plain(random.getstate()),
        "numpy": {
            "kind": str(np_kind),
            "keys": torch.from_numpy(np.asarray(np_keys, dtype=np.int64).copy()),
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "cached_gaussian": float(np_gauss),
        },
        "torch": torch.get_rng_state(),
        "cuda": [s for s in torch.cuda.get_rng_state_all()] if torch.cuda.is_available() else [],
    }
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore every global RNG from a `rng_state` snapshot (CUDA states only where devices exist)."""
    random.setstate(_to_tuple(state["python"]))
    numpy_state = state["numpy"]
    np.random.set_state(
        (
            numpy_state["kind"],
            numpy_state["keys"].numpy().astype(np.uint32),
            int(numpy_state["pos"]),
            int(numpy_state["has_gauss"]),
            float(numpy_state["cached_gaussian"]),
        )
    )
    torch.set_rng_state(state["torch"].cpu())
    cuda_states = state.get("cuda") or []
    if cuda_states and torch.cuda.is_available():
        count = min(len(cuda_states), torch.cuda.device_count())
        torch.cuda.set_rng_state_all([s.cpu() for s in cuda_states[:count]])


def _to_plain(value: Any) -> Any:
    """Tuples -> lists recursively (lists survive every serialiser we use)."""
    if isinstance(value, tuple | list):
        return [_to_plain(v) for v in value]
    return value


def _to_tuple(value: Any) -> Any:
    """Inverse of `_to_plain` for `random.setstate`, which insists on tuples."""
    if isinstance(value, list):
        return tuple(_to_tuple(v) for v in value)
    return value
