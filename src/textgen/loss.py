"""Training loss and evaluation metrics for next-token prediction.

The model's ``(B, T, V)`` logits and the batcher's ``(B, T)`` targets meet here: training uses
`sequence_cross_entropy` (nats per token), and evaluation sums that loss over a whole split and
turns the total into comparable numbers with `compute_metrics`: perplexity, bits per token, and
bits per character / byte, which compare char, word and BPE models on the same text.
See docs/maths.md for the formulas.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

REDUCTIONS = ("mean", "sum", "none")


def sequence_cross_entropy(
    logits: torch.Tensor,
    targets: torch.Tensor,
    *,
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
) -> torch.Tensor:
    """Cross-entropy of next-token scores against target ids, in nats.

    Equal to `F.cross_entropy` on the flattened ``(B*T, V)`` logits and ``(B*T,)`` targets.

    Args:
        logits: raw scores ``(B, T, V)``, floating point.
        targets: int64 ids ``(B, T)``; positions equal to ``ignore_index`` count for nothing.
        ignore_index: target value to skip (padding).
        label_smoothing: in ``[0, 1)``; mixes the one-hot target with the uniform distribution.
        reduction: ``"mean"`` over non-ignored tokens (NaN if all are ignored), ``"sum"``, or
            ``"none"`` for per-token losses ``(B, T)`` (0 at ignored positions).

    Returns:
        A scalar tensor, or ``(B, T)`` for ``reduction="none"``.

    Raises:
        TypeError: ``targets`` is not an integer tensor.
        ValueError: shapes do not match, or an option is out of range.

    Example:
        >>> logits = torch.zeros(2, 3, 5)
        >>> round(sequence_cross_entropy(logits, torch.zeros(2, 3, dtype=torch.long)).item(), 4)
        1.6094
    """
    if logits.dim() != 3 or targets.shape != logits.shape[:2]:
        raise ValueError(
            f"expected logits (B, T, V) and targets (B, T), got logits {tuple(logits.shape)} "
            f"and targets {tuple(targets.shape)}"
        )
    if targets.dtype != torch.long:
        raise TypeError(f"targets must have dtype torch.int64 (long), got {targets.dtype}")
    if reduction not in REDUCTIONS:
        raise ValueError(f"unknown reduction {reduction!r}; expected one of {REDUCTIONS}")
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing!r}")
    batch_size, seq_len, vocab_size = logits.shape
    loss = F.cross_entropy(
        logits.reshape(-1, vocab_size),
        targets.reshape(-1),
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
        reduction=reduction,
    )
    return loss.view(batch_size, seq_len) if reduction == "none" else loss


@dataclass(frozen=True)
class LanguageModelMetrics:
    """Summary of a loss summed over a text.

    Attributes:
        loss: mean nats per token.
        perplexity: ``exp(loss)`` (``inf`` when that overflows).
        bits_per_token: ``loss / ln 2``.
        bits_per_char: total bits / characters, or None when the character count is unknown.
        bits_per_byte: total bits / UTF-8 bytes, or None when the byte count is unknown.
    """

    loss: float
    perplexity: float
    bits_per_token: float
    bits_per_char: float | None
    bits_per_byte: float | None

    @classmethod
    def from_totals(
        cls,
        total_nats: float,
        num_tokens: int,
        num_chars: int | None = None,
        num_bytes: int | None = None,
    ) -> LanguageModelMetrics:
        """Build metrics from a summed loss; see `compute_metrics`."""
        num_tokens = _check_count("num_tokens", num_tokens)
        total_nats = float(total_nats)
        total_bits = total_nats / math.log(2)
        loss = total_nats / num_tokens
        return cls(
            loss=loss,
            perplexity=_safe_exp(loss),
            bits_per_token=total_bits / num_tokens,
            bits_per_char=None
            if num_chars is None
            else total_bits / _check_count("num_chars", num_chars),
            bits_per_byte=None
            if num_bytes is None
            else total_bits / _check_count("num_bytes", num_bytes),
        )

    def to_dict(self) -> dict[str, float | None]:
        """Plain dict with keys loss, perplexity, bits_per_token, bits_per_char, bits_per_byte."""
        return asdict(self)


def compute_metrics(
    total_nats: float,
    num_tokens: int,
    num_chars: int | None = None,
    num_bytes: int | None = None,
) -> dict[str, float | None]:
    """Turn a loss summed over a text into per-token, per-character and per-byte numbers.

    Args:
        total_nats: cross-entropy summed over every predicted token (``reduction="sum"``).
        num_tokens: number of predicted tokens (> 0).
        num_chars: characters of the text those tokens cover, if known (> 0).
        num_bytes: UTF-8 bytes of that text, if known (> 0).

    Returns:
        ``{"loss", "perplexity", "bits_per_token", "bits_per_char", "bits_per_byte"}``; the last
        two are None when their count is not given.

    Raises:
        ValueError: a count is not a positive integer.

    Example:
        >>> compute_metrics(math.log(2) * 8, 8, num_chars=4)["bits_per_char"]
        2.0
    """
    return LanguageModelMetrics.from_totals(total_nats, num_tokens, num_chars, num_bytes).to_dict()


def _check_count(name: str, value: int) -> int:
    # numbers.Integral also admits NumPy integers (split sizes come from NumPy arrays).
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _safe_exp(value: float) -> float:
    try:
        return math.exp(value)
    except OverflowError:
        return math.inf
