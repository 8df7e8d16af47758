"""Preparing a corpus: sources -> split -> fitted tokenizer -> ids in the token cache.

The entry to the data pipeline (sources -> token cache -> batches). `prepare_corpus` reads the
sources (`textgen.data.sources`), splits validation text off the end, fits the tokenizer on
the training part only and has both parts encoded into the token cache
(`textgen.data.cache`), so the next run with the same text and tokenizer just opens them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from textgen.data.cache import (
    Corpus,
    SplitText,
    cache_key,
    default_cache_dir,
    load_or_build,
    write_entry,
)
from textgen.data.sources import (
    ENCODING_ERRORS,
    SourceLike,
    SourceStream,
    read_text,
    resolve_sources,
    scan,
    split_point,
    text_chunks,
)
from textgen.tokenizers import Tokenizer, build_tokenizer
from textgen.validation import InvalidTypeError, check_choice, check_float


def prepare_corpus(
    sources: SourceLike | Sequence[SourceLike],
    tokenizer: Tokenizer | None = None,
    *,
    tokenizer_kind: str = "char",
    tokenizer_options: dict[str, Any] | None = None,
    val_fraction: float = 0.1,
    val_sources: SourceLike | Sequence[SourceLike] | None = None,
    cache_dir: str | Path | None = None,
    errors: str = "strict",
    pattern: str = "*.txt",
) -> Corpus:
    """Read, split, tokenize and cache a corpus; a second call with the same input is a lookup.

    Args:
        sources: a file (``.gz`` read transparently), a folder (recursively ``pattern``), a
            bundled corpus name such as ``"shakespeare"``, or a sequence of these.
        tokenizer: a tokenizer to use; fitted here when it is not fitted yet. None: build one
            with `build_tokenizer(tokenizer_kind, **tokenizer_options)` and fit it.
        tokenizer_kind: ``"char"``, ``"word"`` or ``"bpe"``, used when ``tokenizer`` is None.
        tokenizer_options: constructor options for that kind, e.g. ``{"unknown": "unk"}``.
        val_fraction: share of the text, taken contiguously from the end (moved to just after
            a nearby newline), held out for validation; 0 for none. Ignored with ``val_sources``.
        val_sources: validation text given explicitly; then all of ``sources`` is training text.
        cache_dir: cache folder; default `default_cache_dir`.
        errors: ``"strict"`` rejects invalid UTF-8 naming the file and byte offset;
            ``"replace"`` replaces bad bytes with U+FFFD.
        pattern: file name pattern searched in folders.

    Returns:
        The `Corpus`; use ``corpus.tokenizer`` (on a cache hit it is rebuilt from the cache).

    Raises:
        FileNotFoundError: a source does not exist.
        TypeError: an argument of the wrong type.
        ValueError: empty corpus, invalid UTF-8, an empty split, or a bad argument.
        UnknownTokenError: validation text holds a symbol the training text lacks (and the
            tokenizer maps no unknowns).

    Example:
        >>> corpus = prepare_corpus("shakespeare", cache_dir=tmp)  # doctest: +SKIP
        >>> corpus.train.ids.dtype, corpus.tokenizer.vocab_size  # doctest: +SKIP
        (dtype('uint8'), 65)
    """
    val_fraction = check_float(
        "val_fraction", val_fraction, minimum=0, maximum=1, max_inclusive=False
    )
    check_choice("errors", errors, ENCODING_ERRORS)
    if tokenizer is not None and not isinstance(tokenizer, Tokenizer):
        raise InvalidTypeError(
            "tokenizer", f"tokenizer must be a Tokenizer or None, got {type(tokenizer).__name__}"
        )
    train_stream = scan(resolve_sources(sources, pattern), errors)
    if train_stream.num_bytes == 0:
        raise ValueError(f"corpus is empty: {', '.join(train_stream.names)}")
    val_stream = None
    if val_sources is not None:
        val_stream = scan(resolve_sources(val_sources, pattern), errors)
        if val_stream.num_bytes == 0:
            raise ValueError(f"validation corpus is empty: {', '.join(val_stream.names)}")
    if tokenizer is None:
        tokenizer = build_tokenizer(tokenizer_kind, **(tokenizer_options or {}))

    key = cache_key(
        {
            "train": train_stream.digest,
            "val": val_stream.digest if val_stream is not None else None,
            "val_fraction": None if val_stream is not None else val_fraction,
            "errors": errors,
            "tokenizer": tokenizer.to_dict(),
            "fit": not tokenizer.is_fitted,
        }
    )
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()

    def build(folder: Path) -> None:
        _build_entry(folder, tokenizer, train_stream, val_stream, val_fraction, errors)

    return load_or_build(root, key, build)


def _build_entry(
    folder: Path,
    tokenizer: Tokenizer,
    train_stream: SourceStream,
    val_stream: SourceStream | None,
    val_fraction: float,
    errors: str,
) -> None:
    """Split, fit the tokenizer (if needed) on the training part, and encode into ``folder``."""
    total = train_stream.num_bytes
    train_range = (train_stream, 0, total)
    val_range = None if val_stream is None else (val_stream, 0, val_stream.num_bytes)
    if val_stream is None and val_fraction > 0:
        split = split_point(train_stream, val_fraction)
        if split <= 0 or split >= total:
            raise ValueError(
                f"corpus of {total} bytes is too small to hold out val_fraction={val_fraction}; "
                f"use more text, another val_fraction, or val_fraction=0"
            )
        train_range, val_range = (train_stream, 0, split), (train_stream, split, total)

    if not tokenizer.is_fitted:
        tokenizer.fit(_chunks(*train_range, errors))
        if not tokenizer.is_fitted:
            raise ValueError("the tokenizer learned no vocabulary from the training text")
    # With no validation part the "train split" is simply the text (e.g. `textgen evaluate`)
    train_label = "train split" if val_range is not None else ", ".join(train_stream.names)
    splits = {
        "train": _split_text(train_range, errors, train_label),
        "val": None if val_range is None else _split_text(val_range, errors, "val split"),
    }
    write_entry(
        folder,
        tokenizer,
        splits,
        sources=train_stream.names,
        val_sources=None if val_stream is None else val_stream.names,
    )


def _split_text(byte_range: tuple[SourceStream, int, int], errors: str, label: str) -> SplitText:
    stream, start, end = byte_range
    return SplitText(_chunks(stream, start, end, errors), end - start, label)


def _chunks(stream: SourceStream, start: int, end: int, errors: str) -> Iterator[str]:
    return text_chunks(read_text(stream, start, end, errors))


__all__ = ["prepare_corpus"]
