"""Several processes, one run: the `torch.distributed` process group under ``torchrun``.

textgen scales with PyTorch's own engine: ``torchrun`` starts one process per GPU (or per CPU
share), each runs the same `Trainer`, and `DistributedDataParallel` averages the gradients.
This module is the one place that knows about the process group: it reads the launch from the
environment ``torchrun`` sets (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``), joins the group (NCCL
on CUDA, Gloo on the CPU), pins each process to its local GPU, and offers the few collectives
the Trainer needs (sums, maxima, gathering per-rank state, running a step on rank 0 only). One
process without ``torchrun`` is a world of size 1: every helper is then a cheap no-op, so the
training code reads the same either way.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from textgen.runtime import resolve_device

T = TypeVar("T")

#: The process group this module started (and so must end); None when it started none.
_owned: bool = False


class DistributedError(ValueError):
    """A distributed launch that cannot work (a missing backend, too few GPUs), or a failure on
    another rank reported to this one so that every process stops with the same message."""


def launch_world_size() -> int:
    """The number of processes ``torchrun`` started (``WORLD_SIZE``; 1 without torchrun)."""
    return _env_int("WORLD_SIZE", 1)


def launch_rank() -> int:
    """This process's rank as ``torchrun`` set it (``RANK``; 0 without torchrun), known before
    the process group is joined."""
    return _env_int("RANK", 0)


def is_distributed() -> bool:
    """True inside a process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    """Processes in the run (1 without a process group)."""
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    """This process's rank: 0 ... world_size - 1 (0 without a process group)."""
    return dist.get_rank() if is_distributed() else 0


def is_main() -> bool:
    """True on rank 0, the process that writes files and draws the progress bar."""
    return rank() == 0


def setup(device: str | torch.device = "auto") -> torch.device:
    """Join the process group ``torchrun`` described, and return this process's device.

    Without ``torchrun`` (``WORLD_SIZE`` unset or 1) nothing changes: ``resolve_device(device)``.
    Under ``torchrun`` the group is initialised once (later calls reuse it, and so does a group
    the application initialised itself): NCCL when the device is CUDA, Gloo otherwise. A CUDA
    process is pinned to GPU ``LOCAL_RANK``, so ``--device cuda`` means "my GPU" on every rank.

    Raises:
        DistributedError: the backend is not available here (none exists for MPS), or there
            are fewer GPUs than local ranks.
        ValueError: ``device`` is not available here (`resolve_device`).
    """
    global _owned
    resolved = resolve_device(device)
    if not dist.is_available() or not (dist.is_initialized() or launch_world_size() > 1):
        return resolved
    local_rank = _env_int("LOCAL_RANK", 0)
    if resolved.type == "mps":
        raise DistributedError(
            "torch.distributed has no backend for MPS devices; train with several processes "
            "on CUDA (NCCL) or the CPU (Gloo, --device cpu), or with one process on MPS"
        )
    if resolved.type == "cuda":
        count = torch.cuda.device_count()
        if resolved.index is not None and launch_world_size() > 1 and resolved.index != local_rank:
            raise DistributedError(
                f"device {str(device)!r} names one GPU, but under torchrun each process uses the "
                f"GPU of its LOCAL_RANK; pass --device cuda"
            )
        if local_rank >= count:
            raise DistributedError(
                f"LOCAL_RANK={local_rank} needs GPU {local_rank}, but this machine has {count} "
                f"CUDA device(s); start at most {count} processes per node (--nproc-per-node)"
            )
        resolved = torch.device("cuda", local_rank)
        torch.cuda.set_device(resolved)
    if not dist.is_initialized():
        backend = "nccl" if resolved.type == "cuda" else "gloo"
        available = dist.is_nccl_available() if backend == "nccl" else dist.is_gloo_available()
        if not available:
            raise DistributedError(
                f"the {backend} backend of torch.distributed is not available in this PyTorch "
                f"build; {'install a CUDA build of PyTorch' if backend == 'nccl' else 'use a PyTorch build with Gloo'}"
            )
        timeout = timedelta(seconds=_env_int("TEXTGEN_DIST_TIMEOUT", 1800))
        dist.init_process_group(backend, timeout=timeout)
        _owned = True
    return resolved


def shutdown() -> None:
    """Leave the process group if `setup` started it (a group the application started is the
    application's to end). Safe to call more than once, also after an error."""
    global _owned
    if _owned and dist.is_initialized():
        dist.destroy_process_group()
    _owned = False


def all_reduce(tensor: torch.Tensor, op: str = "sum") -> torch.Tensor:
    """``tensor`` reduced over every rank in place (``"sum"`` or ``"max"``); itself alone
    without a process group."""
    if is_distributed():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM if op == "sum" else dist.ReduceOp.MAX)
    return tensor


def barrier() -> None:
    """Wait until every rank arrives here (nothing without a process group)."""
    if is_distributed():
        dist.barrier()


def gather_to_main(value: T) -> list[T] | None:
    """Every rank's ``value`` (any picklable object), in rank order, on rank 0; None elsewhere.

    Used for the per-rank parts of ``last.pt`` (carried state, RNG streams); values travel
    between the run's own processes, never through a file.
    """
    if not is_distributed():
        return [value]
    gathered: list[Any] | None = [None] * world_size() if is_main() else None
    dist.gather_object(value, gathered, dst=0)
    return gathered


def all_gather(value: T) -> list[T]:
    """Every rank's ``value`` (any picklable object), in rank order, on every rank."""
    if not is_distributed():
        return [value]
    gathered: list[Any] = [None] * world_size()
    dist.all_gather_object(gathered, value)
    return gathered


def agree(failure: str | None) -> None:
    """Raise on every rank when any rank failed: the failing rank's own error is raised there;
    the others raise `DistributedError` naming the first failing rank and its message.

    Every rank must call it at the same point (it is a collective), with ``failure`` the text
    of its own error or None.
    """
    if not is_distributed():
        return
    for index, text in enumerate(all_gather(failure)):
        if text is not None:
            raise DistributedError(f"rank {index} failed: {text}")


def main_first(work: Callable[[], T], *, local: bool = False) -> T:
    """Run ``work`` on rank 0 first (or on each node's local rank 0 with ``local``), then on
    the other ranks, which then find what it built (a token cache, a fitted tokenizer) instead
    of building it again or racing on it. An error on the first ranks stops every rank.
    """
    if not is_distributed():
        return work()
    first = (_env_int("LOCAL_RANK", 0) if local else rank()) == 0
    result = _agreed(work, run_here=first)
    return result if first else work()  # type: ignore[return-value]  # first: work() ran


def on_main(work: Callable[[], T]) -> T | None:
    """Run ``work`` on rank 0 only (writing a file, checking the run folder); its result there,
    None elsewhere. An error on rank 0 is raised on every rank, so none is left waiting."""
    return _agreed(work, run_here=is_main())


def everywhere(work: Callable[[], T]) -> T:
    """Run ``work`` on every rank; an error on any rank is raised on all of them."""
    return _agreed(work, run_here=True)  # type: ignore[return-value]  # work() ran or raised


def _agreed(work: Callable[[], T], *, run_here: bool) -> T | None:
    """``work()`` where ``run_here``, then `agree` on whether it failed anywhere."""
    result: T | None = None
    error: Exception | None = None
    if run_here:
        try:
            result = work()
        except Exception as caught:  # reported to every rank below, then raised here
            if not is_distributed():
                raise
            error = caught
    try:
        agree(None if error is None else f"{type(error).__name__}: {error}")
    except DistributedError:
        if error is not None:
            raise error from None
        raise
    return result


def _env_int(name: str, default: int) -> int:
    """An integer environment variable, with a one-line error naming it when malformed."""
    text = os.environ.get(name)
    if text is None or not text.strip():
        return default
    try:
        return int(text)
    except ValueError:
        raise DistributedError(f"environment variable {name}={text!r} is not an integer") from None


__all__ = [
    "DistributedError",
    "agree",
    "all_gather",
    "all_reduce",
    "barrier",
    "everywhere",
    "gather_to_main",
    "is_distributed",
    "is_main",
    "launch_rank",
    "launch_world_size",
    "main_first",
    "on_main",
    "rank",
    "setup",
    "shutdown",
    "world_size",
]
