"""A suffix array over a token stream: exact longest-match search against the training text.

The index behind `textgen.novelty`. `build_suffix_array` sorts every suffix of a 1-D id array
(the token cache's memory map) by prefix doubling in NumPy: the first sort orders the suffixes
by their first ``w`` tokens packed into one 64-bit key (``w = 63 // bits per token``, 7 for a
character vocabulary), and each further round sorts the suffixes whose rank is still shared
by the pair (rank of the first ``h`` tokens, rank of the next ``h``), doubling ``h`` until all
ranks differ (Larsson and Sadakane's refinement of Manber and Myers' doubling). The first sort
is one ``argsort`` of n 64-bit keys, O(n log n); later rounds sort only the suffixes that
begin repeated passages, so a corpus with long repeats costs more rounds but each is small.
Memory peaks at about 33 bytes per token during the first sort (the 64-bit keys, their
argsort, the sorted copy and an int32 rank); the result is int32 (int64 beyond 2**31 - 1
tokens).

`load_or_build_suffix_array` keeps the result beside the ids as a ``.npy`` file, written to a
private name and renamed into place, and maps it read-only on later calls. `SuffixArray`
answers "what is the longest prefix of this query that occurs in the text, and where?" by
binary search, comparing token slices chunk by chunk.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

_INT32_LIMIT = 2**31 - 1


def build_suffix_array(ids: np.ndarray, vocab_size: int | None = None) -> np.ndarray:
    """Start positions of the suffixes of ``ids`` in lexicographic order.

    A suffix that is a prefix of another sorts first.

    Args:
        ids: 1-D array of non-negative integer token ids (a memory map is read, not copied
            more than once).
        vocab_size: an upper bound on the ids (packs more tokens into the first key); None:
            ``ids.max() + 1``.

    Returns:
        1-D int32 array (int64 for more than 2**31 - 1 tokens), a permutation of
        ``range(len(ids))``.

    Example:
        >>> build_suffix_array(np.array([1, 0, 1, 0], dtype=np.uint8)).tolist()
        [3, 1, 2, 0]
    """
    n = len(ids)
    index_dtype = np.int32 if n <= _INT32_LIMIT else np.int64
    if n == 0:
        return np.empty(0, dtype=index_dtype)
    if vocab_size is None:
        vocab_size = int(ids.max()) + 1
    # Id + 1 so that "past the end" (0) sorts before every token.
    bits = max(1, int(vocab_size).bit_length())
    width = max(1, 63 // bits)
    key = np.zeros(n, dtype=np.uint64)
    for k in range(min(width, n)):
        key <<= np.uint64(bits)
        key[: n - k] |= ids[k:].astype(np.uint64) + np.uint64(1)
    if width > n:
        key <<= np.uint64(bits * (width - n))
    order = np.argsort(key)
    first = _run_starts(key[order])
    del key
    # rank[n] = -1 stands for "past the end": it sorts before every rank, with no test.
    rank = np.empty(n + 1, dtype=index_dtype)
    rank[n] = -1
    rank[order] = _head_of_run(first)
    active = order[_in_long_run(first)]  # positions whose rank is still shared
    del first, order
    step = width
    while active.size:
        # Refine the shared ranks: sort the unresolved positions by (rank of their first
        # `step` tokens, rank of the next `step` tokens). Ranks are "how many suffixes sort
        # before this group", so resolved positions keep their final place and need no work.
        key = rank[active].astype(np.int64)
        key *= n + 1
        following = active + step
        np.minimum(following, n, out=following)
        key += rank[following]
        key += 1
        del following
        order = np.argsort(key)
        key, active = key[order], active[order]
        del order
        head = key // (n + 1)
        first = _run_starts(key)
        rank[active] = head + _head_of_run(first) - _head_of_run(_run_starts(head))
        active = active[_in_long_run(first)]
        step *= 2
    suffix_array = np.empty(n, dtype=index_dtype)
    suffix_array[rank[:n]] = np.arange(n, dtype=index_dtype)
    return suffix_array


def _run_starts(values: np.ndarray) -> np.ndarray:
    """For sorted ``values``: True where a run of equal values begins."""
    starts = np.empty(len(values), dtype=bool)
    starts[:1] = True
    np.not_equal(values[1:], values[:-1], out=starts[1:])
    return starts


def _head_of_run(starts: np.ndarray) -> np.ndarray:
    """Index of the first element of each element's run."""
    index = np.arange(len(starts), dtype=np.int64)
    index[~starts] = 0
    return np.maximum.accumulate(index, out=index)


def _in_long_run(starts: np.ndarray) -> np.ndarray:
    """True for elements of runs longer than one."""
    run = np.cumsum(starts, dtype=np.int64)
    run -= 1
    return np.bincount(run)[run] > 1


def load_or_build_suffix_array(
    ids: np.ndarray, path: str | Path, vocab_size: int | None = None
) -> tuple[np.ndarray, bool]:
    """The suffix array of ``ids`` stored at ``path`` (``.npy``), built and saved when missing.

    A file that does not fit ``ids`` (wrong length or dtype, unreadable) is rebuilt.

    Returns:
        ``(suffix_array, built)``: the array (memory-mapped, read-only, when it was loaded) and
        whether this call built it.
    """
    path = Path(path)
    if path.is_file():
        try:
            stored = np.load(path, mmap_mode="r")
            if stored.shape == (len(ids),) and stored.dtype in (np.int32, np.int64):
                return stored, False
        except (OSError, ValueError):
            pass  # damaged: build it again below
    suffix_array = build_suffix_array(ids, vocab_size)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A private name renamed into place: an interrupted build never leaves half a file.
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}-", suffix=".npy", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            np.save(file, suffix_array)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return suffix_array, True


class SuffixArray:
    """Longest-match search over ``ids`` with its suffix array.

    Args:
        ids: the indexed 1-D token ids.
        suffix_array: `build_suffix_array` of ``ids``.
    """

    def __init__(self, ids: np.ndarray, suffix_array: np.ndarray) -> None:
        if suffix_array.shape != (len(ids),):
            raise ValueError(
                f"suffix_array has shape {suffix_array.shape}, expected ({len(ids)},) for ids"
            )
        self.ids = ids
        self.suffix_array = suffix_array

    def longest_match(self, query: np.ndarray) -> tuple[int, int]:
        """The longest prefix of ``query`` that occurs in ``ids``.

        Args:
            query: 1-D token ids.

        Returns:
            ``(length, position)``: its length in tokens and a start in ``ids`` where it
            occurs (``position`` is -1 when ``length`` is 0).

        Example:
            >>> ids = np.array([3, 1, 2, 3, 1], dtype=np.uint8)
            >>> SuffixArray(ids, build_suffix_array(ids)).longest_match(np.array([2, 3, 1, 1]))
            (3, 2)
        """
        low, high = 0, len(self.suffix_array)
        while low < high:  # first suffix >= query
            middle = (low + high) // 2
            _, order = self._compare(query, int(self.suffix_array[middle]))
            if order > 0:
                low = middle + 1
            else:
                high = middle
        # Suffixes sharing the longest prefix with the query sit next to where it would go.
        best = (0, -1)
        for neighbour in (low - 1, low):
            if 0 <= neighbour < len(self.suffix_array):
                start = int(self.suffix_array[neighbour])
                length, _ = self._compare(query, start)
                if length > best[0]:
                    best = (length, start)
        return best

    def _compare(self, query: np.ndarray, start: int) -> tuple[int, int]:
        """``(common prefix length, sign of query - suffix)`` for the suffix at ``start``."""
        offset, chunk = 0, 32
        while True:
            a = query[offset : offset + chunk]
            b = self.ids[start + offset : start + offset + chunk]
            size = min(len(a), len(b))
            mismatch = np.flatnonzero(a[:size] != b[:size])
            if mismatch.size:
                j = int(mismatch[0])
                return offset + j, (-1 if a[j] < b[j] else 1)
            offset += size
            query_left = offset < len(query)
            suffix_left = start + offset < len(self.ids)
            if not query_left or not suffix_left:
                return offset, int(query_left) - int(suffix_left)
            chunk *= 2


__all__ = ["SuffixArray", "build_suffix_array", "load_or_build_suffix_array"]
