"""Batching: a 1-D array of token ids -> int64 ``(x, y)`` batches of shape (B, T), with a cursor.

The last step of the data pipeline (sources -> token cache -> batches). `StreamBatcher` cuts the
ids into B contiguous streams read T tokens at a time, so batch k+1 continues batch k row by
row and the model's hidden state can be carried over (truncated BPTT, as in char-rnn and
PyTorch's word_language_model); the Trainer trains on it and `evaluate_split` scores a split
with it. `RandomWindowBatcher` serves non-overlapping windows in a seeded random order, each
once per epoch; the state must then be reset for every batch. Both keep a cursor (epoch, batch)
made of plain ints so a resumed run continues at the same batch.

Under ``torchrun`` each process builds its batcher with its ``rank`` and the ``world_size``:
``batch_size`` is then the rows of one process, the layout is that of one batcher of
``batch_size * world_size`` rows, and rank r serves rows ``r*B ... (r+1)*B - 1`` of it. So
2 processes of batch B read exactly what one process of batch 2B reads, and every stream stays
with one process (its carried state stays correct).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator

import numpy as np
import torch

from textgen.validation import InvalidTypeError, InvalidValueError, check_bool, check_int

Batch = tuple[torch.Tensor, torch.Tensor]


def _too_short(
    num_tokens: int, batch_size: int, seq_len: int, world_size: int = 1
) -> InvalidValueError:
    rows = batch_size * world_size
    size = f"batch_size={batch_size}"
    if world_size > 1:
        size = f"batch_size={rows} ({world_size} processes x {batch_size})"
    return InvalidValueError(
        ("ids", "batch_size", "seq_len"),
        f"the ids hold {num_tokens} tokens, but one batch of {size} x "
        f"seq_len={seq_len} needs at least {rows * seq_len + 1} "
        f"(batch_size * seq_len + 1 for the shifted targets); lower batch_size or seq_len, "
        f"or use more text",
    )


def _check_ids(ids: np.ndarray) -> np.ndarray:
    if not isinstance(ids, np.ndarray) or ids.ndim != 1:
        raise InvalidTypeError("ids", f"ids must be a 1-D numpy array, got {type(ids).__name__}")
    if ids.dtype.kind not in "ui":
        raise InvalidTypeError("ids", f"ids must hold integers, got dtype {ids.dtype}")
    return ids


def clamp_batch_size(num_tokens: int, batch_size: int, seq_len: int) -> int:
    """The largest batch size <= ``batch_size`` that fits one batch into ``num_tokens`` ids.

    Meant for a small validation split: ``StreamBatcher(val.ids, clamp_batch_size(
    val.num_tokens, batch_size, seq_len), seq_len)`` instead of failing.

    Raises:
        ValueError: not even one window of ``seq_len + 1`` tokens fits.
    """
    num_tokens = check_int("num_tokens", num_tokens, minimum=0)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    seq_len = check_int("seq_len", seq_len, minimum=1)
    fitting = (num_tokens - 1) // seq_len
    if fitting < 1:
        raise _too_short(num_tokens, 1, seq_len)
    return min(batch_size, fitting)


#: Cursor keys added after the first release, and the value a cursor saved without them means.
_SAVED_BEFORE = {"world_size": 1}


class _CursorBatcher(ABC):
    """Shared checks, cursor and iteration; subclasses choose the windows of each batch."""

    def __init__(
        self,
        ids: np.ndarray,
        batch_size: int,
        seq_len: int,
        device: torch.device | str | None,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.ids = _check_ids(ids)
        self.batch_size = check_int("batch_size", batch_size, minimum=1)
        self.seq_len = check_int("seq_len", seq_len, minimum=1)
        self.world_size = check_int("world_size", world_size, minimum=1)
        self.rank = check_int("rank", rank, minimum=0, maximum=self.world_size - 1)
        #: rows of one batch over all processes; this process serves rows ``_rows`` of them
        self.global_batch_size = self.batch_size * self.world_size
        self._rows = slice(self.rank * self.batch_size, (self.rank + 1) * self.batch_size)
        self.num_tokens = len(ids)
        if self.num_tokens == 0:
            raise InvalidValueError("ids", "the ids are empty: the corpus has no tokens")
        self._check_length()
        self.device = None if device is None else torch.device(device)
        self.epoch = 0
        self.batch = 0  # index within the epoch of the next batch to serve

    def _check_length(self) -> None:
        """Raise when the ids cannot fill one batch (subclasses may need fewer tokens)."""
        if self.num_tokens < self.global_batch_size * self.seq_len + 1:
            raise _too_short(self.num_tokens, self.batch_size, self.seq_len, self.world_size)

    @property
    @abstractmethod
    def batches_per_epoch(self) -> int:
        """Number of batches in one epoch."""

    @abstractmethod
    def _windows(self, epoch: int, index: int) -> np.ndarray:
        """Rows of ``seq_len + 1`` consecutive ids for batch ``index`` of ``epoch``."""

    def __len__(self) -> int:
        return self.batches_per_epoch

    def get_batch(self, index: int, epoch: int | None = None) -> Batch:
        """Batch ``index`` of ``epoch`` (default: the current one) without moving the cursor.

        Returns:
            ``(x, y)``, int64 tensors of shape (B, T); ``y[:, t] == x[:, t + 1]`` within a row.
        """
        if not 0 <= index < self.batches_per_epoch:
            raise IndexError(f"batch index {index} out of range [0, {self.batches_per_epoch})")
        windows = torch.from_numpy(self._windows(self.epoch if epoch is None else epoch, index))
        windows = windows.to(torch.int64)
        x, y = windows[:, :-1].contiguous(), windows[:, 1:].contiguous()
        if self.device is not None:
            x, y = x.to(self.device), y.to(self.device)
        return x, y

    def _next(self) -> Batch:
        batch = self.get_batch(self.batch)
        self.batch += 1
        if self.batch == self.batches_per_epoch:
            self.epoch, self.batch = self.epoch + 1, 0
        return batch

    def __iter__(self) -> Iterator[Batch]:
        """Batches from the cursor on, across epochs, without end (``self.epoch`` counts)."""
        while True:
            yield self._next()

    def iter_epoch(self) -> Iterator[Batch]:
        """The remaining batches of the current epoch (all of it when the cursor is at 0)."""
        epoch = self.epoch
        while self.epoch == epoch:
            yield self._next()

    def state_dict(self) -> dict[str, int]:
        """The cursor and the sizes it is valid for; plain ints (safe for ``weights_only``)."""
        return {
            "epoch": self.epoch,
            "batch": self.batch,
            "num_tokens": self.num_tokens,
            "batch_size": self.batch_size,
            "seq_len": self.seq_len,
            "world_size": self.world_size,
        }

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Restore a cursor from `state_dict`; the next batch is the one that came next then.

        Raises:
            ValueError: a key is missing, or the sizes differ from this batcher's.
        """
        expected = self.state_dict()
        missing = sorted(set(expected) - set(state) - set(_SAVED_BEFORE))
        if missing:
            raise ValueError(f"batcher state lacks {', '.join(missing)}")
        for key in expected.keys() - {"epoch", "batch"}:
            if int(state.get(key, _SAVED_BEFORE.get(key, -1))) != expected[key]:
                raise ValueError(
                    f"batcher state was saved with {key}={state[key]}, but this batcher has "
                    f"{key}={expected[key]}"
                )
        epoch, batch = int(state["epoch"]), int(state["batch"])
        if epoch < 0 or not 0 <= batch < self.batches_per_epoch:
            raise ValueError(f"batcher state has an invalid cursor epoch={epoch}, batch={batch}")
        self.epoch, self.batch = epoch, batch


class StreamBatcher(_CursorBatcher):
    """Truncated-BPTT batches: B contiguous streams, consecutive batches continue each stream.

    The ids are cut into ``batch_size`` streams of ``L = (num_tokens - 1) // batch_size`` tokens
    and batch k holds tokens ``[k*T, (k+1)*T)`` of every stream. For 100 ids, B=2 and T=4
    (L=49; numbers are the ids' positions)::

                    batch 0       batch 1              batch 11      partial window
        stream 0:   0  1  2  3 |  4  5  6  7 | ... | 44 45 46 47 | 48
        stream 1:  49 50 51 52 | 53 54 55 56 | ... | 93 94 95 96 | 97

    ``y`` is ``x`` shifted by one: each row reads one id past its window (row 0 of batch 0
    predicts 1 2 3 4). Row i of batch k+1 continues row i of batch k, so carry the hidden state
    from batch k to k+1 (detached) and reset it at the start of an epoch (``batcher.batch == 0``
    before taking the batch). The trailing partial window (fewer than T tokens) is dropped,
    unless ``keep_partial_window``: evaluation keeps it to score every token
    (`StreamBatcher.for_evaluation`), training drops it so every batch has the same shape.

    Args:
        ids: 1-D integer array (e.g. ``corpus.train.ids``, a memory map; only the rows of one
            batch are read at a time).
        batch_size: B, parallel streams.
        seq_len: T, time steps per batch.
        keep_partial_window: also serve the last, narrower batch ``(B, L - k*T)``. The cursor in
            `state_dict` does not record this choice: batch k is the same window either way.
        device: where batches go (None: CPU tensors).
        rank: this process's share of the streams under ``torchrun`` (see the module's notes).
        world_size: processes sharing the streams; the text is cut into
            ``batch_size * world_size`` streams and this process reads streams
            ``rank*B ... (rank+1)*B - 1``.

    Raises:
        TypeError: ``ids`` is not a 1-D integer array, or a size is not an int.
        ValueError: ``batch_size``/``seq_len`` < 1, ``rank`` outside ``[0, world_size)``, or
            fewer than ``B*W*T + 1`` tokens (``B*W + 1`` with ``keep_partial_window``).

    Example:
        >>> batcher = StreamBatcher(np.arange(100, dtype=np.uint8), batch_size=2, seq_len=4)
        >>> x, y = next(iter(batcher))
        >>> x.tolist(), y.tolist()
        ([[0, 1, 2, 3], [49, 50, 51, 52]], [[1, 2, 3, 4], [50, 51, 52, 53]])
    """

    def __init__(
        self,
        ids: np.ndarray,
        batch_size: int,
        seq_len: int,
        *,
        keep_partial_window: bool = False,
        device: torch.device | str | None = None,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.keep_partial_window = check_bool("keep_partial_window", keep_partial_window)
        super().__init__(ids, batch_size, seq_len, device, rank, world_size)
        self.stream_len = (self.num_tokens - 1) // self.global_batch_size

    @classmethod
    def for_evaluation(
        cls,
        ids: np.ndarray,
        batch_size: int,
        seq_len: int,
        *,
        device: torch.device | str | None = None,
    ) -> StreamBatcher:
        """Streams that cover (nearly) every id of ``ids``, for scoring a whole split.

        At most ``batch_size`` streams, fewer when the ids hold fewer full windows (at least
        one stream, so a text shorter than one window is still scored), with the partial
        window kept: all but the ``(num_tokens - 1) % B`` ids left over by the cut into
        streams are predicted.

        Args:
            ids: 1-D integer array with at least 2 ids.
            batch_size: the most streams B.
            seq_len: T, time steps per batch (the last batch may be narrower).
            device: where batches go (None: CPU tensors).

        Raises:
            TypeError: ``ids`` is not a 1-D integer array, or a size is not an int.
            ValueError: fewer than 2 ids (nothing to predict), or a size < 1.

        Example:
            >>> batcher = StreamBatcher.for_evaluation(np.arange(10), batch_size=8, seq_len=4)
            >>> batcher.batch_size, [x.shape[1] for x, _ in batcher.iter_epoch()]
            (2, [4])
        """
        _check_ids(ids)
        batch_size = check_int("batch_size", batch_size, minimum=1)
        seq_len = check_int("seq_len", seq_len, minimum=1)
        if len(ids) < 2:
            raise InvalidValueError(
                "ids",
                f"the ids hold only {len(ids)} token(s); scoring needs at least 2 "
                f"(an input and its target)",
            )
        streams = max(1, min(batch_size, (len(ids) - 1) // seq_len))
        return cls(ids, streams, seq_len, keep_partial_window=True, device=device)

    def _check_length(self) -> None:
        if not self.keep_partial_window:
            super()._check_length()
        elif self.num_tokens < self.global_batch_size + 1:
            raise InvalidValueError(
                "ids",
                f"the ids hold {self.num_tokens} tokens, but {self.global_batch_size} streams need at "
                f"least {self.batch_size + 1} (one token each plus the shifted target); lower "
                f"batch_size or use more text",
            )

    @property
    def batches_per_epoch(self) -> int:
        if self.keep_partial_window:
            return -(-self.stream_len // self.seq_len)
        return self.stream_len // self.seq_len

    def _windows(self, epoch: int, index: int) -> np.ndarray:
        offset = index * self.seq_len
        width = min(self.seq_len, self.stream_len - offset)  # < seq_len: the partial window
        starts = range(offset, self.global_batch_size * self.stream_len, self.stream_len)
        return np.stack([self.ids[s : s + width + 1] for s in starts[self._rows]])


class RandomWindowBatcher(_CursorBatcher):
    """Shuffled batches of non-overlapping windows; each window exactly once per epoch.

    Window w covers tokens ``[w*T, w*T + T]``; epoch e visits the windows in the order of a
    permutation seeded by ``(seed, e)``, so a restored cursor reproduces the same batches. The
    last batch of an epoch has fewer rows when the windows do not divide evenly (unless
    ``drop_last``): size the state from ``x.size(0)``. Reset the state for every batch. Under
    ``torchrun`` the permutation is shared: batch k of the run is rows ``k*B*W ...`` of it, and
    rank r serves rows ``r*B ... (r+1)*B - 1`` of that batch (``drop_last`` is then required,
    so that no process is left with a short or empty batch).

    Args:
        ids: 1-D integer array.
        batch_size: B, windows per batch.
        seq_len: T, tokens per window.
        seed: shuffling seed.
        drop_last: skip the incomplete last batch of each epoch.
        device: where batches go (None: CPU tensors).
        rank: this process's share of each batch under ``torchrun``.
        world_size: processes sharing each batch of ``batch_size * world_size`` windows.

    Raises:
        ValueError: ``batch_size``/``seq_len`` < 1, ``rank`` outside ``[0, world_size)``,
            ``world_size > 1`` without ``drop_last``, or fewer than ``B*W*T + 1`` tokens.
    """

    def __init__(
        self,
        ids: np.ndarray,
        batch_size: int,
        seq_len: int,
        *,
        seed: int,
        drop_last: bool = False,
        device: torch.device | str | None = None,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        super().__init__(ids, batch_size, seq_len, device, rank, world_size)
        self.seed = check_int("seed", seed, minimum=0)
        self.drop_last = check_bool("drop_last", drop_last)
        if self.world_size > 1 and not self.drop_last:
            raise InvalidValueError(
                "drop_last",
                "several processes (world_size > 1) need drop_last=True: a short last batch "
                "would leave some processes fewer rows than others, or none",
            )
        self.num_windows = (self.num_tokens - 1) // self.seq_len
        self._order: tuple[int, np.ndarray] | None = None

    @property
    def batches_per_epoch(self) -> int:
        if self.drop_last:
            return self.num_windows // self.global_batch_size
        return -(-self.num_windows // self.global_batch_size)

    def _permutation(self, epoch: int) -> np.ndarray:
        if self._order is None or self._order[0] != epoch:
            rng = np.random.default_rng([self.seed, epoch])
            self._order = (epoch, rng.permutation(self.num_windows))
        return self._order[1]

    def _windows(self, epoch: int, index: int) -> np.ndarray:
        size = self.global_batch_size
        rows = self._permutation(epoch)[index * size : (index + 1) * size][self._rows]
        span = self.seq_len + 1
        return np.stack([self.ids[w * self.seq_len : w * self.seq_len + span] for w in rows])

    def state_dict(self) -> dict[str, int]:
        """The cursor, sizes and seed; plain ints."""
        return {**super().state_dict(), "seed": self.seed, "drop_last": int(self.drop_last)}


__all__ = ["Batch", "RandomWindowBatcher", "StreamBatcher", "clamp_batch_size"]
