"""Which recurrent kernel runs a model on the CPU: measured, per phase of generation.

PyTorch's CPU build runs `nn.LSTM` / `nn.GRU` either through oneDNN (the default) or through its
own native kernel. Which is faster depends on the machine and on the shape of the call: for one
token at a time (the decoding step), oneDNN sets up and frees large buffers on every call and
was 15-30x slower than the native kernel on the machines we measured, while over a long prompt
oneDNN can be the faster one. So the Sampler does not assume: the first time a model shape runs
a phase (``"prompt"`` or ``"step"``) on the CPU, `choose_kernel` times both kernels on a few
dummy calls and remembers the faster for the rest of the process. Both kernels compute the same
function; the choice changes speed only (floating-point rounding may differ in the last bits).

``TEXTGEN_CPU_KERNEL=native|onednn`` fixes the choice (``auto``, the default, measures).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

from textgen.validation import check_choice

KERNELS = ("auto", "native", "onednn")
PHASES = ("prompt", "step")
_PROMPT_PROBE_LENGTH = 64  # tokens in the dummy prompt that times the prompt phase
_PROBE_CALLS = 3  # timed calls per kernel (after one warm-up call each)

_choices: dict[tuple[object, ...], bool] = {}


def onednn_available() -> bool:
    """True when this torch build can run recurrent layers through oneDNN."""
    return bool(torch.backends.mkldnn.is_available())


@contextmanager
def cpu_kernel(use_onednn: bool | None) -> Iterator[None]:
    """Run the recurrent layers inside through oneDNN (True) or the native kernel (False);
    None changes nothing (not on a CPU, or nothing to choose).

    The switch is torch's process-wide oneDNN flag, set for the block and restored after (only
    the flag: no other oneDNN setting is touched).
    """
    if use_onednn is None:
        yield
        return
    # The documented attribute, not ``set_flags``, whose positional parameters differ between
    # torch releases.
    previous = bool(torch.backends.mkldnn.enabled)
    torch.backends.mkldnn.enabled = use_onednn  # type: ignore[assignment]
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = previous  # type: ignore[assignment]


def choose_kernel(
    model: nn.Module,
    run: Callable[[torch.Tensor], object],
    *,
    phase: str,
    batch_size: int,
) -> bool | None:
    """Whether oneDNN is the faster kernel for ``phase`` of ``model`` at ``batch_size`` rows.

    Measured once per process for each model shape, phase and batch size (see the module
    docstring); ``run(ids)`` must run the model on ids of shape ``(B, T)`` (zeros, a valid id
    for any vocabulary) from a zero state. None on anything but a CPU with oneDNN: there is
    nothing to choose (pass it to `cpu_kernel`, which then changes nothing).

    Raises:
        ValueError: ``TEXTGEN_CPU_KERNEL`` or ``phase`` is not one of the accepted names.
    """
    check_choice("phase", phase, PHASES)
    setting = check_choice(
        "TEXTGEN_CPU_KERNEL", os.environ.get("TEXTGEN_CPU_KERNEL", "auto").lower(), KERNELS
    )
    device = next(model.parameters()).device
    if device.type != "cpu" or not onednn_available():
        return None
    if setting != "auto":
        return setting == "onednn"
    shape = tuple((name, tuple(p.shape), p.dtype) for name, p in model.named_parameters())
    key = (type(model), shape, phase, batch_size)
    if key not in _choices:
        length = _PROMPT_PROBE_LENGTH if phase == "prompt" else 1
        ids = torch.zeros((batch_size, length), dtype=torch.long, device=device)
        timings = {flag: _time(run, ids, flag) for flag in (False, True)}
        _choices[key] = timings[True] < timings[False]
    return _choices[key]


def _time(run: Callable[[torch.Tensor], object], ids: torch.Tensor, use_onednn: bool) -> float:
    """Median seconds of a call of ``run(ids)`` with one kernel (after one warm-up call)."""
    times = []
    with cpu_kernel(use_onednn), torch.inference_mode():
        run(ids)
        for _ in range(_PROBE_CALLS):
            start = time.perf_counter()
            run(ids)
            times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


__all__ = ["KERNELS", "PHASES", "choose_kernel", "cpu_kernel", "onednn_available"]
