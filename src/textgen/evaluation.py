"""Scoring a token stream: the loss and the metrics people compare, with the state carried.

Used by `Trainer.evaluate` for validation and by ``textgen evaluate`` for any text file. The
windows come from `StreamBatcher.for_evaluation`, the training batcher's stream layout with
the trailing partial window kept, so evaluation and training cut a text the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch

from textgen.data import StreamBatcher, TokenSplit
from textgen.loss import compute_metrics, sequence_cross_entropy
from textgen.model import LSTMLanguageModel
from textgen.validation import InvalidTypeError, check_optional_int


@torch.no_grad()
def evaluate_split(
    model: LSTMLanguageModel,
    split: TokenSplit,
    *,
    batch_size: int = 16,
    seq_len: int = 256,
    max_batches: int | None = None,
    autocast: Callable[[], AbstractContextManager[Any]] = nullcontext,
) -> dict[str, Any]:
    """Cross-entropy of ``model`` over a token stream, with the state carried across windows.

    The stream is cut into at most ``batch_size`` parallel streams (fewer for a short text) and
    read window by window, so all but fewer than ``batch_size`` tokens are scored. Only one
    window of ``split.ids`` (a memory map) is read at a time.

    Args:
        model: the model to score; put in eval mode for the call, its mode restored after.
        split: the token ids and the size of their text.
        batch_size: the most parallel streams B.
        seq_len: T, tokens per window (the last window may be shorter).
        max_batches: score only the first this many windows; None: all of them.
        autocast: a context manager factory entered around each forward (mixed precision).

    Returns:
        ``{"tokens", "loss", "perplexity", "bits_per_token", "bits_per_char", "bits_per_byte",
        "complete"}``; ``complete`` is False when ``max_batches`` left windows unscored (the
        figures then cover the first windows of every stream: a fixed sample spread over the
        text).

    Raises:
        TypeError: ``split`` is not a `TokenSplit`, or a size is not an int.
        ValueError: a size < 1, or the split holds fewer than 2 tokens.
    """
    if not isinstance(split, TokenSplit):
        raise InvalidTypeError("split", f"split must be a TokenSplit, got {type(split).__name__}")
    max_batches = check_optional_int("max_batches", max_batches, minimum=1)
    device = next(model.parameters()).device
    batcher = StreamBatcher.for_evaluation(split.ids, batch_size, seq_len, device=device)
    num_batches = len(batcher) if max_batches is None else min(max_batches, len(batcher))
    was_training = model.training
    model.eval()
    nats, total_tokens, state = torch.zeros((), device=device, dtype=torch.float64), 0, None
    try:
        for index in range(num_batches):
            x, y = batcher.get_batch(index)
            with autocast():
                # The batcher built int64 (B, T) ids and the state is the model's own: no checks.
                logits, state = model(x, state, check=False)
            nats += sequence_cross_entropy(logits.float(), y, reduction="sum")  # no device sync
            total_tokens += y.numel()
    finally:
        model.train(was_training)
    total_nats = float(nats.item())
    metrics = compute_metrics(
        total_nats,
        total_tokens,
        num_chars=_scaled(split.num_chars, total_tokens, split.num_tokens),
        num_bytes=_scaled(split.num_bytes, total_tokens, split.num_tokens),
    )
    return {"tokens": total_tokens, **metrics, "complete": num_batches == len(batcher)}


def _scaled(count: int | None, tokens: int, total_tokens: int) -> int | None:
    """Characters (or bytes) in the scored part of a split, assuming an even spread."""
    if count is None or total_tokens == 0:
        return None
    return max(1, round(count * tokens / total_tokens))
