"""Stop strings: where the text of one sequence ends, decided as its tokens arrive.

In the sampling flow (prompt -> model -> processors -> draw -> **decode** -> fed back) each new
token's bytes go to one `StopMatcher` per sequence. The matcher decodes UTF-8 incrementally
(a character split across tokens waits for its last byte), finds the earliest stop string even
when it spans several tokens, and holds back any tail that could still begin one, so the text it
releases is final. `textgen.Sampler.generate` keeps one per row, `textgen.Sampler.stream` yields
what it releases, and `textgen.Sampler.beam_search` cuts each finished hypothesis with one:
the three agree by construction.

Example:
    >>> matcher = StopMatcher(["\\n\\n"])
    >>> [matcher.feed(piece) for piece in (b"Hi", b"\\n", b"\\nthere")]
    ['Hi', '', '']
    >>> matcher.stopped
    True
"""

from __future__ import annotations

import codecs
from collections.abc import Sequence
from typing import Literal

from textgen.tokenizers import Tokenizer
from textgen.validation import check_strings

FinishReason = Literal["length", "eos", "stop"]


class StopMatcher:
    """Incremental stop-string matching for one sequence.

    Feed it the bytes of each new token (`feed`); it returns the text that is now safe to emit:
    complete characters that can no longer be part of a stop string. Once a stop string has
    appeared, `stopped` is True and the text before the earliest one has been returned; the stop
    string itself and anything after it never are. `close` flushes what was held back at the
    end of the sequence (an incomplete character becomes ``"\\ufffd"``, as with
    ``errors="replace"``). Without stop strings only incomplete characters are held back.

    "Earliest" is decided when the first stop string is complete: among the stop strings found
    in the text so far, the one that starts first wins (``stop=("abcd", "bc")`` on ``"abcd"``
    stops at ``"bc"``, complete one token earlier).

    Args:
        stops: the stop strings (a string or a sequence of non-empty strings; may be empty).

    Raises:
        TypeError: ``stops`` is not a string or a sequence of strings.
        ValueError: a stop string is empty.

    Example:
        >>> matcher = StopMatcher(("END",))
        >>> matcher.feed(b"caf\\xc3"), matcher.feed(b"\\xa9 E"), matcher.feed(b"NDING")
        ('caf', '\\xe9 ', '')
        >>> matcher.stopped
        True
    """

    def __init__(self, stops: str | Sequence[str] = ()) -> None:
        self.stops: tuple[str, ...] = check_strings("stop", stops)
        self.stopped = False
        self._longest = max((len(s) for s in self.stops), default=0)
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""  # decoded text not yet released

    def feed(self, data: bytes) -> str:
        """Add the next bytes of the sequence; return the text now safe to emit (maybe ``""``).

        After the sequence has stopped, further bytes are ignored and ``""`` is returned.
        """
        if self.stopped:
            return ""
        return self._release(self._decoder.decode(data))

    def close(self) -> str:
        """End the sequence: return the rest of the text (cut before a stop string, if one is
        completed by flushing an incomplete character)."""
        if self.stopped:
            return ""
        text = self._release(self._decoder.decode(b"", final=True))
        rest, self._pending = self._pending, ""
        return text + rest

    def _release(self, text: str) -> str:
        pending = self._pending + text
        if not self.stops:
            self._pending = ""
            return pending
        cut = _find_stop(pending, self.stops)
        if cut is not None:
            self.stopped, self._pending = True, ""
            return pending[:cut]
        keep = self._held_back(pending)
        self._pending = pending[len(pending) - keep :]
        return pending[: len(pending) - keep]

    def _held_back(self, text: str) -> int:
        """Length of the longest suffix of ``text`` that could be the start of a stop string."""
        for size in range(min(len(text), self._longest - 1), 0, -1):
            tail = text[-size:]
            if any(s.startswith(tail) for s in self.stops):
                return size
        return 0


class BatchStops:
    """A `StopMatcher` per row of a batched decoding, fed each step's new tokens.

    Tokens equal to the tokenizer's ``eos_id`` are not text and are skipped, as are rows that
    already stopped. Without stop strings nothing needs feeding per step (and `feed` need not be
    called): `finish` decodes each row's ids at once.

    Args:
        tokenizer: gives each token's bytes (``decode_bytes``) and the ``eos_id``.
        stops: the stop strings.
        num_rows: rows in the batch.
    """

    def __init__(self, tokenizer: Tokenizer, stops: Sequence[str], num_rows: int) -> None:
        self.tokenizer = tokenizer
        self.stops = check_strings("stop", stops)
        self._matchers = [StopMatcher(self.stops) for _ in range(num_rows)]
        self._pieces: list[list[str]] = [[] for _ in range(num_rows)]
        self._stop_steps: dict[int, int] = {}  # row -> step of the token completing a stop

    def feed(self, step: int, ids: Sequence[int]) -> list[int]:
        """Give row ``i`` the token ``ids[i]`` drawn at ``step``; return the rows a stop string
        ended at this step."""
        ended = []
        for row, token in enumerate(ids):
            if row in self._stop_steps or token == self.tokenizer.eos_id:
                continue
            matcher = self._matchers[row]
            self._pieces[row].append(matcher.feed(self.tokenizer.decode_bytes([token])))
            if matcher.stopped:
                self._stop_steps[row] = step
                ended.append(row)
        return ended

    def finish(self, row: int, ids: list[int]) -> tuple[str, list[int], FinishReason]:
        """The outcome of ``row`` given all the ids it drew (``eos_id`` repeated once it ended).

        Returns:
            ``(text, ids, reason)``: the text cut before the earliest stop string; the ids up to
            and including the token that completed it, else up to the end-of-sequence token
            (excluded); and ``"stop"``, ``"eos"`` or ``"length"``.
        """
        reason: FinishReason = "length"
        eos = self.tokenizer.eos_id
        if row in self._stop_steps:
            ids, reason = ids[: self._stop_steps[row] + 1], "stop"
        elif eos is not None and eos in ids:
            ids, reason = ids[: ids.index(eos)], "eos"
        matcher, pieces = self._matchers[row], self._pieces[row]
        if not self.stops:  # the fast path: decoded once, at the end
            pieces.append(matcher.feed(self.tokenizer.decode_bytes(ids)))
        pieces.append(matcher.close())
        return "".join(pieces), ids, "stop" if matcher.stopped else reason


def match_pieces(pieces: Sequence[bytes], stops: Sequence[str]) -> tuple[str, int | None]:
    """Run a whole sequence through a `StopMatcher`.

    Args:
        pieces: the bytes of each token, in order.
        stops: the stop strings.

    Returns:
        ``(text, index)``: the text cut before the earliest stop string, and the index of the
        piece that completed it (None when no stop string appeared).
    """
    matcher = StopMatcher(stops)
    parts: list[str] = []
    for index, piece in enumerate(pieces):
        parts.append(matcher.feed(piece))
        if matcher.stopped:
            return "".join(parts), index
    parts.append(matcher.close())
    # A stop completed by flushing an incomplete character ("\ufffd") needed every piece.
    return "".join(parts), (len(pieces) - 1 if matcher.stopped else None)


def _find_stop(text: str, stops: Sequence[str]) -> int | None:
    """Index of the earliest stop string in ``text``, or None."""
    hits = [i for i in (text.find(s) for s in stops) if i >= 0]
    return min(hits) if hits else None


__all__ = ["BatchStops", "FinishReason", "StopMatcher", "match_pieces"]
