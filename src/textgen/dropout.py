"""Dropout whose random mask is cheap to draw on the CPU.

Why this exists: on the CPU `torch.nn.functional.dropout` draws its mask with ``bernoulli_``,
one call of the random generator per element. For the activations of a 2 x 256 character model
(32 x 100 x 256 values) that took about 7 ms; with three dropout sites per step the mask
drawing was about 17% of a bf16 training step on a 2-core CPU. Drawn here, a mask costs about a
third of that (docs/performance.md, "Dropout on the CPU").

How: draw 64-bit words from the same default generator (``random_``), cut each word into four
16-bit pieces and keep an element when its low 15 bits fall below ``round(q * 32768)``, where
``q = 1 - p`` is the keep probability: one generator call per four elements. (``random_`` on
int64 gives values in ``[0, 2**63)``, so one piece of each word has only 15 random bits; using
the low 15 bits of every piece keeps all four uniform.) The kept share is a multiple of 1/32768
and kept values are scaled by its inverse, so the expected output equals the input, as with
``F.dropout``; `_threshold_and_scale` says how the share is rounded (in bfloat16 the drop
probability moves by up to about 0.002).

The mask comes from torch's default CPU generator, so `textgen.runtime.seed_everything` and the
RNG state saved in checkpoints make it reproducible and resumable like any other draw. Elsewhere
(CUDA draws masks in a fused kernel) and for keep probabilities below 1/32768 this falls back to
``F.dropout``.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from textgen.validation import check_float

_PIECE_BITS = 15
_PIECES = 1 << _PIECE_BITS  # uniform values per 15-bit piece
_PIECES_PER_WORD = 4  # 16-bit pieces in one int64 word


def dropout(
    x: torch.Tensor,
    p: float,
    *,
    training: bool = True,
    mask_shape: torch.Size | tuple[int, ...] | None = None,
) -> torch.Tensor:
    """Zero each element of ``x`` with probability ``p`` and scale the rest by ``1 / (1 - p)``.

    The same contract as ``F.dropout(x, p, training)``; faster on the CPU (see the module
    docstring), where the kept share is rounded to a multiple of 1/32768.

    Args:
        x: activations of any shape, on any device.
        p: drop probability in ``[0, 1)`` (checked once per value: the check is cached with
            the threshold it gives).
        training: False returns ``x`` unchanged, as in evaluation.
        mask_shape: draw a smaller mask that broadcasts over ``x``: ``(B, 1, E)`` for
            ``(B, T, E)`` activations is locked dropout (one mask per sequence, shared by every
            time step). None draws one value per element.

    Returns:
        A tensor shaped like ``x`` in its dtype; gradients flow through the kept elements, scaled.

    Raises:
        InvalidValueError: ``p`` is outside ``[0, 1)`` (a negative ``p`` would otherwise scale
            every element down silently).
    """
    if not training or p == 0:
        return x
    shape = x.shape if mask_shape is None else torch.Size(mask_shape)
    keep, scale = _threshold_and_scale(p, x.dtype)
    if x.device.type != "cpu" or keep == 0:
        if mask_shape is None:
            return F.dropout(x, p, training=True)
        mask = torch.empty(shape, device=x.device, dtype=x.dtype).bernoulli_(1 - p)
        return x * mask / (1 - p)
    count = shape.numel()
    words = torch.empty(
        (count + _PIECES_PER_WORD - 1) // _PIECES_PER_WORD, dtype=torch.int64, device=x.device
    ).random_()
    pieces = words.view(torch.int16)[:count].view(shape)
    kept = pieces.bitwise_and(_PIECES - 1) < keep
    return x * kept.to(x.dtype).mul_(scale)


@functools.lru_cache(maxsize=64)
def _threshold_and_scale(p: float, dtype: torch.dtype) -> tuple[int, float]:
    """The 15-bit threshold (keep when below) and the scale of kept values, for ``p``.

    The mask holds the scale in the activations' dtype, so the scale is first rounded to that
    dtype and the kept share is then chosen as the multiple of 1/32768 nearest its inverse: the
    expected output stays the input (to within 2**-15), one multiply applies the mask, and each
    output is rounded once, as with ``F.dropout``. In float32 this moves nothing; in bfloat16
    (8 significant bits) the drop probability moves by up to about 0.002 (0.1 becomes 0.0986).
    """
    check_float("p", p, minimum=0, maximum=1, max_inclusive=False)
    keep = round((1 - p) * _PIECES)
    if keep == 0:
        return 0, 0.0
    scale = float(torch.tensor(_PIECES / keep, dtype=dtype))
    return min(round(_PIECES / scale), _PIECES), scale
