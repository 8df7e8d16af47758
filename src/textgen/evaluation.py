"""Scoring a token stream: the loss and the metrics people compare, with the state carried.

Used by `Trainer.evaluate` for validation and by ``textgen evaluate`` for any text file.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import numpy as np
import torch

from textgen.data import TokenSplit
from textgen.loss import compute_metrics, sequence_cross_entropy
from textgen.model import LSTMLanguageModel


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
    read window by window, so all but fewer than ``batch_size`` tokens are scored.

    Returns:
        ``{"tokens", "loss", "perplexity", "bits_per_token", "bits_per_char", "bits_per_byte"}``.
    """
    if batch_size < 1 or seq_len < 1:
        raise ValueError(f"batch_size and seq_len must be >= 1, got {batch_size} and {seq_len}")
    ids = split.ids  # may be a memmap larger than RAM: only one window is read at a time
    streams = max(1, min(batch_size, (len(ids) - 1) // seq_len))
    length = (len(ids) - 1) // streams
    if length < 1:
        raise ValueError(f"cannot evaluate: the text has only {len(ids)} token(s), need at least 2")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    # Row i reads ids[i*length : (i+1)*length] and predicts the same span shifted by one.
    starts = np.arange(streams) * length
    total_nats, total_tokens, state = 0.0, 0, None
    for batch_index, begin in enumerate(range(0, length, seq_len)):
        if max_batches is not None and batch_index >= max_batches:
            break
        width = min(seq_len, length - begin)
        window = np.stack([ids[s + begin : s + begin + width + 1] for s in starts])
        window_t = torch.from_numpy(window.astype(np.int64))
        x, y = window_t[:, :-1].to(device), window_t[:, 1:].to(device)
        with autocast():
            logits, state = model(x, state)
        total_nats += sequence_cross_entropy(logits.float(), y, reduction="sum").item()
        total_tokens += y.numel()
    model.train(was_training)
    metrics = compute_metrics(
        total_nats,
        total_tokens,
        num_chars=_scaled(split.num_chars, total_tokens, split.num_tokens),
        num_bytes=_scaled(split.num_bytes, total_tokens, split.num_tokens),
    )
    return {"tokens": total_tokens, **metrics}


def _scaled(count: int | None, tokens: int, total_tokens: int) -> int | None:
    """Characters (or bytes) in the scored part of a split, assuming an even spread."""
    if count is None or total_tokens == 0:
        return None
    return max(1, round(count * tokens / total_tokens))
