"""Is this text new, or copied from the training text? Exact copied spans against a run's data.

Sits on top of the token cache (`textgen.data`) and the suffix array (`textgen.suffix_array`):
`NoveltyIndex.for_run` finds a run's training split in the cache (encoding it once if the cache
lacks it), builds the suffix array of its ids once and stores it in the same cache entry, so
later calls only map it. `NoveltyIndex.report` then finds, for every token i of a text, the
longest run of tokens starting at i that also occurs in the training text (exact: a binary
search in the suffix array per token, O(log n) comparisons), and reports:

- the longest copied span, in characters and tokens, with its position in both texts;
- the copied spans of at least ``min_span`` characters (each one that no earlier span
  contains) and the fraction of the text's characters they cover.

Positions and lengths in characters count the characters of the decoded tokens (the text
itself for lossless tokenizers such as char and bpe). The training text is the run's train
split: its validation text is not searched.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from textgen.checkpoint import load_checkpoint
from textgen.data import Corpus
from textgen.run_config import load_run_data
from textgen.suffix_array import SuffixArray, load_or_build_suffix_array
from textgen.tokenizers import Tokenizer
from textgen.validation import InvalidTypeError, InvalidValueError, check_int

#: File name of the suffix array in a token cache entry.
INDEX_FILE = "train.suffix-array.npy"
_CHUNK = 1 << 24  # training tokens summed per step when locating character offsets


@dataclass(frozen=True)
class CopiedSpan:
    """A run of the text that occurs verbatim in the training text.

    Attributes:
        text_char: character offset of the span in the text.
        text_token: token index of the span in the text.
        train_char: character offset of one occurrence in the training text.
        train_token: token index of that occurrence in the training split.
        num_chars: length in characters.
        num_tokens: length in tokens.
        text: the copied text.
    """

    text_char: int
    text_token: int
    train_char: int
    train_token: int
    num_chars: int
    num_tokens: int
    text: str


@dataclass(frozen=True)
class NoveltyReport:
    """How much of a text is copied from the training text.

    Attributes:
        num_chars: characters of the text.
        num_tokens: tokens of the text.
        min_span: the shortest span, in characters, counted as copied.
        longest: the longest span found in the training text (None when no token of the text
            occurs there, or the text is empty).
        copied_chars: characters covered by copied spans of at least ``min_span`` characters.
        copied_fraction: ``copied_chars / num_chars`` (0 for an empty text).
        spans: those copied spans, in text order.
    """

    num_chars: int
    num_tokens: int
    min_span: int
    longest: CopiedSpan | None
    copied_chars: int
    copied_fraction: float
    spans: list[CopiedSpan]

    def to_dict(self) -> dict[str, Any]:
        """Plain values for JSON (spans as objects)."""
        return asdict(self)

    def summary(self) -> str:
        """One line: the longest copied span and the copied fraction."""
        longest = self.longest
        if longest is None:
            first = "no copied text"
        else:
            first = (
                f"longest copied span {longest.num_chars} chars ({longest.num_tokens} tokens) "
                f"at char {longest.text_char}, training char {longest.train_char}"
            )
        return (
            f"{first}; copied {100 * self.copied_fraction:.1f}% of {self.num_chars} chars "
            f"in {len(self.spans)} span{'s' * (len(self.spans) != 1)} of >= {self.min_span} chars"
        )


class NoveltyIndex:
    """Exact copied-span search over a training token stream.

    Args:
        ids: the training split's token ids (1-D, e.g. the cache's memory map).
        suffix_array: their suffix array (`textgen.suffix_array.build_suffix_array`).
        tokenizer: the tokenizer of ``ids``.
        built: whether the suffix array was built (rather than loaded) for this index.

    Example:
        >>> index = NoveltyIndex.for_run("runs/shakespeare")  # doctest: +SKIP
        >>> index.report(sample_text, min_span=50).summary()  # doctest: +SKIP
        'longest copied span 64 chars (64 tokens) at char 120, training char 30412; ...'
    """

    def __init__(
        self,
        ids: np.ndarray,
        suffix_array: np.ndarray,
        tokenizer: Tokenizer,
        *,
        built: bool = False,
    ) -> None:
        self.search = SuffixArray(ids, suffix_array)
        self.tokenizer = tokenizer
        self.built = built
        self._lengths = _char_lengths(tokenizer)

    @classmethod
    def for_corpus(cls, corpus: Corpus) -> NoveltyIndex:
        """The index of ``corpus.train``, its suffix array loaded from (or built into) the
        corpus's cache entry."""
        ids = corpus.train.ids
        suffix_array, built = load_or_build_suffix_array(
            ids, corpus.cache_path / INDEX_FILE, corpus.tokenizer.vocab_size
        )
        return cls(ids, suffix_array, corpus.tokenizer, built=built)

    @classmethod
    def for_run(
        cls,
        run: str | Path,
        *,
        cache_dir: str | Path | None = None,
        tokenizer: Tokenizer | None = None,
    ) -> NoveltyIndex:
        """The index of the training text of the run folder ``run`` (or of the run a checkpoint
        file in it belongs to), from its ``data.json`` and the checkpoint's tokenizer.

        Args:
            run: a run folder, or a checkpoint file inside one.
            cache_dir: where the prepared corpus and the index are cached (default: the run's).
            tokenizer: the run's tokenizer, when the caller has already loaded the checkpoint
                (``textgen generate --novelty`` has), so it is not read a second time.

        Raises:
            ValueError: the run folder has no ``data.json`` (a run made from Python).
            CheckpointError: the folder holds no readable checkpoint.
        """
        if tokenizer is None:
            tokenizer = load_checkpoint(run).tokenizer
        folder = Path(run) if Path(run).is_dir() else Path(run).parent
        data = load_run_data(folder)
        if data is None:
            raise InvalidValueError(
                "run",
                f"{folder} has no data.json saying what text the run was trained on; novelty "
                "needs a run folder made by `textgen train` (or use NoveltyIndex.for_corpus)",
            )
        if cache_dir is not None:
            data = replace(data, cache_dir=str(cache_dir))
        return cls.for_corpus(data.prepare(tokenizer))

    def report(self, text: str, *, min_span: int = 50) -> NoveltyReport:
        """Copied spans of ``text`` and the share of its characters they cover.

        Args:
            text: the text to check (e.g. a generated sample).
            min_span: the shortest span, in characters, counted as copied.

        Raises:
            TypeError: ``text`` is not a str.
            ValueError: ``min_span < 1``, or a symbol of ``text`` is not in the vocabulary.
        """
        if not isinstance(text, str):
            raise InvalidTypeError("text", f"text must be a str, got {type(text).__name__}")
        min_span = check_int("min_span", min_span, minimum=1)
        query = np.asarray(self.tokenizer.encode(text), dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(self._lengths[query])]).astype(np.int64)
        num_chars = int(offsets[-1])
        matches = [self.search.longest_match(query[i:]) for i in range(len(query))]
        spans_at: list[tuple[int, int, int]] = []  # (text token, length, train token)
        best: tuple[int, int, int] | None = None
        reach = 0  # end of the furthest-reaching span so far: later spans inside it add nothing
        for i, (length, position) in enumerate(matches):
            chars = int(offsets[i + length] - offsets[i])
            if best is None or chars > offsets[best[0] + best[1]] - offsets[best[0]]:
                best = (i, length, position)
            if length and i + length > reach and chars >= min_span:
                spans_at.append((i, length, position))
            reach = max(reach, i + length)
        covered = np.zeros(len(query), dtype=bool)
        for i, length, _ in spans_at:
            covered[i : i + length] = True
        copied_chars = int(self._lengths[query[covered]].sum())
        wanted = [best] if best is not None else []
        train_chars = self._train_offsets([p for _, _, p in [*wanted, *spans_at]])

        def span(i: int, length: int, position: int) -> CopiedSpan:
            return CopiedSpan(
                text_char=int(offsets[i]),
                text_token=i,
                train_char=train_chars.get(position, -1),
                train_token=position,
                num_chars=int(offsets[i + length] - offsets[i]),
                num_tokens=length,
                text=self.tokenizer.decode(query[i : i + length].tolist()),
            )

        return NoveltyReport(
            num_chars=num_chars,
            num_tokens=len(query),
            min_span=min_span,
            longest=None if best is None or best[1] == 0 else span(*best),
            copied_chars=copied_chars,
            copied_fraction=copied_chars / num_chars if num_chars else 0.0,
            spans=[span(*found) for found in spans_at],
        )

    def _train_offsets(self, positions: list[int]) -> dict[int, int]:
        """Character offsets of the given training token positions, in one pass over the ids."""
        ids = self.search.ids
        wanted = sorted({p for p in positions if p >= 0})
        offsets: dict[int, int] = {}
        base, k = 0, 0
        for start in range(0, len(ids), _CHUNK):
            if k == len(wanted):
                break
            chunk = self._lengths[np.asarray(ids[start : start + _CHUNK])]
            sums = np.concatenate([[0], np.cumsum(chunk)])
            while k < len(wanted) and wanted[k] < start + len(chunk):
                offsets[wanted[k]] = base + int(sums[wanted[k] - start])
                k += 1
            base += int(sums[-1])
        return offsets


def novelty_report(
    run: str | Path, text: str, *, min_span: int = 50, cache_dir: str | Path | None = None
) -> NoveltyReport:
    """How much of ``text`` is copied from the training text of the run folder ``run``.

    `NoveltyIndex.for_run` then `NoveltyIndex.report`; keep the index to check many texts.

    Example:
        >>> novelty_report("runs/shakespeare", sample).copied_fraction  # doctest: +SKIP
        0.12
    """
    return NoveltyIndex.for_run(run, cache_dir=cache_dir).report(text, min_span=min_span)


def _char_lengths(tokenizer: Tokenizer) -> np.ndarray:
    """Characters of each token id: the UTF-8 bytes of its text that start a character."""
    lengths = np.zeros(tokenizer.vocab_size, dtype=np.int64)
    for token_id in range(tokenizer.vocab_size):
        data = tokenizer.decode_bytes([token_id])
        lengths[token_id] = sum(1 for byte in data if byte & 0xC0 != 0x80)
    return lengths


__all__ = ["INDEX_FILE", "CopiedSpan", "NoveltyIndex", "NoveltyReport", "novelty_report"]
