"""Scoring a token stream: the loss and the metrics people compare, with the state carried.

Used by `Trainer.evaluate` for validation and by ``textgen evaluate`` for any text file. The
windows come from `StreamBatcher.for_evaluation`, the training batcher's stream layout with
the trailing partial window kept, so evaluation and training cut a text the same way. Under
``torchrun`` each process scores its own share of the streams and the sums are added up over
the processes, so every process reports the figures one process would.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch

from textgen import distributed
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
    unk_id: int | None = None,
    rank: int = 0,
    world_size: int = 1,
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
        unk_id: the tokenizer's ``<unk>`` id, if it has one: the scored ``<unk>`` targets are
            counted, because a text whose words mostly map to ``<unk>`` scores deceptively
            well (predicting ``<unk>`` is easy), and bits per character then mean little.
        rank: under ``torchrun``, this process's share of the streams (a contiguous range;
            every process must call this function, as the sums are added up over them).
        world_size: processes sharing the work; ``batch_size`` is per process, so the text is
            cut into at most ``batch_size * world_size`` streams, as by one process of that batch.

    Returns:
        ``{"tokens", "loss", "perplexity", "bits_per_token", "bits_per_char", "bits_per_byte",
        "complete"}``, plus ``"unk_tokens"`` and ``"unk_share"`` (of the scored tokens) when
        ``unk_id`` is given; ``complete`` is False when ``max_batches`` left windows unscored
        (the figures then cover the first windows of every stream: a fixed sample spread over
        the text).

    Raises:
        TypeError: ``split`` is not a `TokenSplit`, or a size is not an int.
        ValueError: a size < 1, or the split holds fewer than 2 tokens.
    """
    if not isinstance(split, TokenSplit):
        raise InvalidTypeError("split", f"split must be a TokenSplit, got {type(split).__name__}")
    max_batches = check_optional_int("max_batches", max_batches, minimum=1)
    device = next(model.parameters()).device
    batcher = StreamBatcher.for_evaluation(
        split.ids, batch_size * world_size, seq_len, device=device
    )
    num_batches = len(batcher) if max_batches is None else min(max_batches, len(batcher))
    # This process's streams; a short split may leave a process none (it then adds zeros).
    streams = batcher.batch_size
    rows = slice(rank * streams // world_size, (rank + 1) * streams // world_size)
    was_training = model.training
    model.eval()
    sums = torch.zeros(3, device=device, dtype=torch.float64)  # nats, tokens, <unk> targets
    state = None
    try:
        for index in range(num_batches if rows.start < rows.stop else 0):
            x, y = batcher.get_batch(index)
            x, y = x[rows], y[rows]
            with autocast():
                # The batcher built int64 (B, T) ids and the state is the model's own: no checks.
                logits, state = model(x, state, check=False)
            sums[0] += sequence_cross_entropy(logits.float(), y, reduction="sum")  # no sync
            sums[1] += y.numel()
            if unk_id is not None:
                sums[2] += (y == unk_id).sum()
    finally:
        model.train(was_training)
    if world_size > 1:
        distributed.all_reduce(sums)
    total_nats, total_tokens = float(sums[0]), int(sums[1])
    metrics = compute_metrics(
        total_nats,
        total_tokens,
        num_chars=_scaled(split.num_chars, total_tokens, split.num_tokens),
        num_bytes=_scaled(split.num_bytes, total_tokens, split.num_tokens),
    )
    result: dict[str, Any] = {"tokens": total_tokens, **metrics}
    result["complete"] = num_batches == len(batcher)
    if unk_id is not None:
        unk_tokens = int(sums[2])
        result.update(unk_tokens=unk_tokens, unk_share=unk_tokens / max(total_tokens, 1))
    return result


#: Above this share of ``<unk>`` tokens, scores are reported with a warning.
UNK_WARNING_SHARE = 0.05


def unk_warning(metrics: dict[str, Any], what: str) -> str | None:
    """A one-line warning when ``<unk>`` makes up a large share of the scored tokens."""
    share = metrics.get("unk_share")
    if share is None or share <= UNK_WARNING_SHARE:
        return None
    return (
        f"{share:.1%} of the tokens of {what} are <unk> ({metrics['unk_tokens']:,}): the loss "
        "and bits per character are too optimistic (predicting <unk> is easy); use a larger "
        "vocabulary (--min-freq 1, more training text) or another tokenizer"
    )


def _scaled(count: int | None, tokens: int, total_tokens: int) -> int | None:
    """Characters (or bytes) in the scored part of a split, assuming an even spread."""
    if count is None or total_tokens == 0:
        return None
    return max(1, round(count * tokens / total_tokens))
