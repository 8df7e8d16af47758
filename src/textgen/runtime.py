"""Devices, precision, seeds and random-number-generator state: the runtime facts all parts share.

The Trainer and the CLI resolve a device once and pass it down; `check_precision` and
`autocast` decide how the forward pass computes; checkpoints capture and restore every RNG
(Python, NumPy, torch CPU and CUDA) through `rng_state` / `set_rng_state` so a resumed run draws
the same random numbers as an uninterrupted one.
"""

from __future__ import annotations

import random
import re
import signal
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

import numpy as np
import torch

from textgen.validation import InvalidValueError, check_str

#: Numeric precisions of training: ``auto`` (bf16 where the device computes it natively, else
#: fp32), float32, bfloat16 autocast, float16 autocast + grad scaler.
PRECISIONS = ("auto", "fp32", "bf16", "fp16")

_DEVICE_NAME = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


def check_device_name(name: str, value: Any) -> str:
    """``value`` when it is a device name textgen understands (availability is not checked:
    a config written on one machine may run on another; `resolve_device` checks that).

    Raises:
        InvalidTypeError: not a string.
        InvalidValueError: not ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
    """
    check_str(name, value)
    if not _DEVICE_NAME.fullmatch(value.strip().lower()):
        raise InvalidValueError(
            name, f"{name} must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {value!r}"
        )
    return value


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Turn ``"auto" | "cpu" | "cuda" | "cuda:N" | "mps"`` into a usable `torch.device`.

    ``"auto"`` means CUDA when available, else Apple's MPS when available, else CPU (the
    command line prints which it chose).

    Raises:
        ValueError: the device string is malformed or the device is not available here.
    """
    name = str(device) if isinstance(device, torch.device) else str(device).strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if _mps_available() else "cpu")
    try:
        resolved = torch.device(name)
    except RuntimeError as error:
        raise ValueError(
            f"invalid device {device!r}; expected 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"
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
            f"unsupported device {device!r}; expected 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"
        )
    return resolved


def _mps_available() -> bool:
    """Apple's Metal backend is built into this torch and usable on this machine."""
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def describe_device(requested: str | torch.device, device: torch.device) -> str:
    """One line saying which device a run uses, and why when ``auto`` chose it, e.g.
    ``"device: mps (auto: no CUDA, Apple MPS available)"``."""
    if str(requested).strip().lower() != "auto":
        return f"device: {device}"
    reason = {
        "cuda": "CUDA available",
        "mps": "no CUDA, Apple MPS available",
        "cpu": "no CUDA or MPS",
    }[device.type]
    return f"device: {device} (auto: {reason})"


def check_precision(precision: str, device: torch.device) -> None:
    """Refuse a precision the device cannot train in, with what to use instead.

    Raises:
        ValueError: fp16 off CUDA; bf16 on a GPU without bfloat16, or on a CPU whose LSTM
            kernels (oneDNN) have no bfloat16 path (CPUs without AVX-512 or AMX).
    """
    if precision == "fp16" and device.type != "cuda":
        raise InvalidValueError(
            "precision",
            f"precision 'fp16' needs a CUDA device (got {device}); use 'bf16' or 'fp32'",
        )
    if precision == "bf16" and not bf16_supported(device):
        where = "this GPU" if device.type == "cuda" else "this CPU (no AVX-512 or AMX)"
        alternative = "'fp16'" if device.type == "cuda" else "'fp32'"
        raise InvalidValueError(
            "precision", f"precision 'bf16' is not supported on {where}; use {alternative}"
        )


def resolve_precision(precision: str, device: torch.device) -> str:
    """The precision a run uses: ``"auto"`` becomes ``"bf16"`` where ``device`` computes
    bfloat16 natively (a CUDA GPU with bf16; a CPU with AVX-512 BF16 or AMX), else ``"fp32"``;
    any other name is itself.

    bf16 autocast trained 1.5-1.7x faster at the same loss on such CPUs (docs/performance.md);
    where bf16 is only emulated it is slower than fp32, so ``auto`` does not pick it.
    """
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if bf16_supported(device) else "fp32"
    if device.type == "cpu" and cpu_has_native_bf16() and bf16_supported(device):
        return "bf16"
    return "fp32"


def cpu_has_native_bf16() -> bool:
    """True when the CPU has bfloat16 instructions (AVX-512 BF16 or AMX), read from the flags
    Linux reports in /proc/cpuinfo (False elsewhere, where it cannot be told)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool({"avx512_bf16", "amx_bf16"} & flags)
    except OSError:
        pass
    return False


def bf16_supported(device: torch.device) -> bool:
    """Whether bfloat16 autocast can run the model on ``device`` at all."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    if device.type == "cpu":
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False


def autocast(precision: str, device: torch.device) -> AbstractContextManager[Any]:
    """The autocast context of a precision: none for fp32, else bf16/fp16 on ``device``'s type."""
    if precision == "fp32":
        return nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


@contextmanager
def on_stop_signals(request_stop: Callable[[], None]) -> Iterator[None]:
    """While inside, SIGINT (Ctrl-C) and SIGTERM call ``request_stop`` instead of killing the
    process, so a training loop can finish its step and save; the old handlers come back after.
    Outside the main thread signals cannot be caught, and nothing changes."""

    def handler(signum: int, frame: Any) -> None:
        request_stop()

    try:
        previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


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
