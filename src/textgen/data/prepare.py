"""Preparing a corpus: `DataConfig` says what to read and how to tokenize it, `prepare_corpus`
does it.

The entry to the data pipeline (sources -> token cache -> batches). `prepare_corpus` reads the
sources (`textgen.data.sources`), splits validation text off the end, fits the tokenizer on
the training part (a character tokenizer takes its alphabet from all of the text) and has both
parts encoded into the token cache
(`textgen.data.cache`), so the next run with the same text and tokenizer just opens them.
`DataConfig` holds those settings with their defaults and help texts, once: the command line
builds its data flags from its fields, and ``DataConfig(...).prepare()`` runs them.

Documents mode (``documents="lines"`` or ``"files"``) is for lists of short items: each line
(or file) is one document, and the tokenizer's end-of-text id follows each one in the stream
(lines mode: in place of the newline; blank lines are dropped). Training windows still run
across documents and the hidden state is carried on, so the model learns what ends an item and
how a new one begins; generation stops at end-of-text.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import chain
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
    read_files,
    read_text,
    resolve_sources,
    scan,
    split_point,
    text_chunks,
)
from textgen.options import option
from textgen.tokenizers import Tokenizer, build_tokenizer
from textgen.validation import (
    InvalidTypeError,
    InvalidValueError,
    check_choice,
    check_float,
    check_optional_int,
    check_str,
    check_strings,
)

TOKENIZERS = ("char", "word", "bpe")
DOCUMENTS = ("none", "lines", "files")
UNKNOWN_POLICIES = ("error", "unk")
_MIN_BPE_VOCAB = 256 + 1  # every byte, plus the end-of-text token
# Tokenizer options of DataConfig -> the tokenizers they apply to, under their own names there.
_TOKENIZER_OPTIONS: dict[str, dict[str, str]] = {
    "vocab_size": {"bpe": "vocab_size"},
    "min_freq": {"word": "min_freq", "bpe": "min_frequency"},
    "unknown": {"char": "unknown", "word": "unknown"},
}


@dataclass(frozen=True)
class DataConfig:
    """Where the text comes from, how it is tokenized and split, and where ids are cached.

    Tokenizer options left at None take the tokenizer's own default; one set for a tokenizer
    it does not apply to is refused. ``sources`` and ``val_files`` also accept a single string
    or a list and are stored as tuples.

    Attributes:
        sources: files (``.gz`` read transparently), folders (searched recursively for
            ``pattern``) or bundled corpus names such as ``"shakespeare"``.
        tokenizer: ``"char"``, ``"word"`` or ``"bpe"``.
        vocab_size: bpe only: target vocabulary size (None: 2048).
        min_freq: word: minimum count of a kept word (None: 1); bpe: minimum count of a
            merged pair (None: 2).
        unknown: char and word: ``"error"`` (unknown symbols raise, naming them) or ``"unk"``
            (they become ``<unk>``); None: ``"error"`` for char, ``"unk"`` for word.
        val_fraction: share of the text, taken from its end, held out for validation; 0 for
            none. Ignored when ``val_files`` is given.
        val_files: validation text given explicitly; then all of ``sources`` is training text.
        encoding_errors: ``"strict"`` (invalid UTF-8 raises, naming the file and byte offset)
            or ``"replace"`` (bad bytes become U+FFFD).
        cache_dir: cache folder; None: `default_cache_dir`.
        pattern: file name pattern searched in folders (``pattern + ".gz"`` matches too).
        documents: ``"none"`` (one running text), ``"lines"`` or ``"files"`` (each line or
            file is one document, followed by the end-of-text token).

    Raises:
        TypeError: a field has the wrong type (the message names it).
        ValueError: a field has a bad value, or is set for a tokenizer it does not apply to.

    Example:
        >>> config = DataConfig(sources="my_texts/", tokenizer="bpe", vocab_size=4096)
        >>> config.sources, config.build_tokenizer().to_dict()["vocab_size"]
        (('my_texts/',), 4096)
        >>> corpus = DataConfig(val_fraction=0.1).prepare()  # doctest: +SKIP
    """

    sources: tuple[str, ...] = option(
        ("shakespeare",),
        "files, folders or bundled corpus names (such as 'shakespeare') to train on",
        flag="",
    )
    tokenizer: str = option(
        "char",
        "char: Unicode characters; word: words and punctuation; bpe: trainable byte-level BPE",
        choices=TOKENIZERS,
    )
    vocab_size: int | None = option(
        None, "target vocabulary size of the bpe tokenizer (default 2048)"
    )
    min_freq: int | None = option(
        None, "minimum count of a kept word (word, default 1) or a merged pair (bpe, default 2)"
    )
    unknown: str | None = option(
        None,
        "unknown symbols: an error naming them, or an <unk> token (default: error for char, "
        "unk for word)",
        choices=UNKNOWN_POLICIES,
    )
    val_fraction: float = option(
        0.05, "share of the text, taken from its end, held out for validation (0: none)"
    )
    val_files: tuple[str, ...] | None = option(
        None, "validation file(s) to use instead of holding out part of the text", flag="--val-file"
    )
    encoding_errors: str = option(
        "strict",
        "bytes that are not UTF-8: stop with an error naming the file, or replace them",
        choices=ENCODING_ERRORS,
    )
    cache_dir: str | None = option(
        None, "where encoded token ids are cached (default: $TEXTGEN_CACHE or ~/.cache/textgen)"
    )
    pattern: str = option("*.txt", "file name pattern searched for in folders")
    documents: str = option(
        "none",
        "each line (or file) is one document, ended by an end-of-text token where samples stop",
        choices=DOCUMENTS,
    )

    def __post_init__(self) -> None:
        sources = check_strings("sources", self.sources)
        if not sources:
            raise InvalidValueError(
                "sources", "sources is empty; give a file, a folder or a bundled corpus name"
            )
        object.__setattr__(self, "sources", sources)
        check_choice("tokenizer", self.tokenizer, TOKENIZERS)
        check_optional_int("vocab_size", self.vocab_size, minimum=_MIN_BPE_VOCAB)
        check_optional_int("min_freq", self.min_freq, minimum=1)
        if self.unknown is not None:
            check_choice("unknown", self.unknown, UNKNOWN_POLICIES)
        for name, applies_to in _TOKENIZER_OPTIONS.items():
            value = getattr(self, name)
            if value is not None and self.tokenizer not in applies_to:
                kinds = " and ".join(applies_to)
                raise InvalidValueError(
                    name,
                    f"{name}={value!r} does not apply to tokenizer={self.tokenizer!r}: it is an "
                    f"option of the {kinds} tokenizer{'s' * (len(applies_to) > 1)}; leave it "
                    f"None, or choose another tokenizer",
                )
        check_float("val_fraction", self.val_fraction, minimum=0, maximum=1, max_inclusive=False)
        if self.val_files is not None:
            val_files = check_strings("val_files", self.val_files)
            if not val_files:
                raise InvalidValueError(
                    "val_files", "val_files is empty; give at least one file, or None"
                )
            object.__setattr__(self, "val_files", val_files)
        check_choice("encoding_errors", self.encoding_errors, ENCODING_ERRORS)
        if self.cache_dir is not None:
            check_str("cache_dir", self.cache_dir)
        check_str("pattern", self.pattern)
        check_choice("documents", self.documents, DOCUMENTS)

    def build_tokenizer(self) -> Tokenizer:
        """A new, unfitted tokenizer of kind ``tokenizer`` with the options set here.

        Example:
            >>> DataConfig(tokenizer="word", min_freq=3).build_tokenizer().to_dict()["min_freq"]
            3
        """
        options = {
            applies_to[self.tokenizer]: getattr(self, name)
            for name, applies_to in _TOKENIZER_OPTIONS.items()
            if getattr(self, name) is not None
        }
        return build_tokenizer(self.tokenizer, **options)

    def text_chunks(self) -> Iterator[str]:
        """The text of ``sources`` and ``val_files``, in chunks: what a fitted tokenizer will
        have to encode (fine-tuning looks in it for symbols the vocabulary lacks)."""
        for sources in (self.sources, self.val_files or ()):
            if sources:
                stream = scan(resolve_sources(sources, self.pattern), self.encoding_errors)
                yield from _chunks(stream, 0, stream.num_bytes, self.encoding_errors)

    def prepare(self, tokenizer: Tokenizer | None = None) -> Corpus:
        """Read, split, tokenize and cache the text: `prepare_corpus` with these settings.

        Args:
            tokenizer: a tokenizer to use instead of building one, e.g. a resumed run's (its
                vocabulary is kept when it is fitted). None: `build_tokenizer`.

        Returns:
            The `Corpus`.

        Raises:
            The errors of `prepare_corpus`.
        """
        return prepare_corpus(
            self.sources,
            tokenizer if tokenizer is not None else self.build_tokenizer(),
            val_fraction=self.val_fraction,
            val_sources=self.val_files,
            cache_dir=self.cache_dir,
            errors=self.encoding_errors,
            pattern=self.pattern,
            documents=self.documents,
        )


def prepare_corpus(
    sources: SourceLike | Sequence[SourceLike],
    tokenizer: Tokenizer | None = None,
    *,
    tokenizer_kind: str = DataConfig.tokenizer,
    tokenizer_options: dict[str, Any] | None = None,
    val_fraction: float = DataConfig.val_fraction,
    val_sources: SourceLike | Sequence[SourceLike] | None = None,
    cache_dir: str | Path | None = None,
    errors: str = DataConfig.encoding_errors,
    pattern: str = DataConfig.pattern,
    documents: str = DataConfig.documents,
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
        documents: ``"none"``; ``"lines"``: each non-blank line is one document, its newline
            replaced by the end-of-text token; ``"files"``: each file is one document (a final
            newline dropped), followed by the end-of-text token.

    Returns:
        The `Corpus`; use ``corpus.tokenizer`` (on a cache hit it is rebuilt from the cache).

    Raises:
        FileNotFoundError: a source does not exist.
        TypeError: an argument of the wrong type.
        ValueError: empty corpus, invalid UTF-8, an empty split, a bad argument, or documents
            mode with a tokenizer that has no end-of-text token.
        UnknownTokenError: validation text holds a symbol the training text lacks and the
            tokenizer maps no unknowns (never for the character tokenizer, whose alphabet comes
            from all of the text).

    Example:
        >>> corpus = prepare_corpus("shakespeare", cache_dir=tmp)  # doctest: +SKIP
        >>> corpus.train.ids.dtype, corpus.tokenizer.vocab_size  # doctest: +SKIP
        (dtype('uint8'), 77)
    """
    val_fraction = check_float(
        "val_fraction", val_fraction, minimum=0, maximum=1, max_inclusive=False
    )
    check_choice("errors", errors, ENCODING_ERRORS)
    check_choice("documents", documents, DOCUMENTS)
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
            "documents": documents,
        }
    )
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()

    def build(folder: Path) -> None:
        _build_entry(folder, tokenizer, train_stream, val_stream, val_fraction, errors, documents)

    return load_or_build(root, key, build)


def _build_entry(
    folder: Path,
    tokenizer: Tokenizer,
    train_stream: SourceStream,
    val_stream: SourceStream | None,
    val_fraction: float,
    errors: str,
    documents: str,
) -> None:
    """Split, fit the tokenizer (if needed) on the training part, and encode into ``folder``.

    A character tokenizer takes its alphabet from the validation part too (its ``fit`` counts
    nothing, so only the set of symbols leaks): held-out Chinese text, say, always holds
    characters the training part lacks, and the default (unknown="error") must still train.
    """
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
        fit_on = [train_range]
        if tokenizer.fits_alphabet_only and val_range is not None:
            # Only the alphabet comes from the validation text (see Tokenizer.fits_alphabet_only):
            # a character seen only there must not stop the run.
            fit_on.append(val_range)
        # Fit on what will be encoded: in lines mode a char tokenizer never sees a newline, so
        # no sample can hold one. Word and BPE join a token across chunks, so a newline keeps
        # the last word of one document apart from the first of the next.
        apart = "" if tokenizer.fits_alphabet_only else "\n"
        pieces = chain.from_iterable(
            _split_text(part, errors, "", documents).chunks for part in fit_on
        )
        tokenizer.fit(apart if chunk is None else chunk for chunk in pieces)
        if not tokenizer.is_fitted:
            raise ValueError("the tokenizer learned no vocabulary from the training text")
    # With no validation part the "train split" is simply the text (e.g. `textgen evaluate`)
    train_label = "train split" if val_range is not None else ", ".join(train_stream.names)
    splits = {
        "train": _split_text(train_range, errors, train_label, documents),
        "val": None
        if val_range is None
        else _split_text(val_range, errors, "val split", documents),
    }
    write_entry(
        folder,
        tokenizer,
        splits,
        sources=train_stream.names,
        val_sources=None if val_stream is None else val_stream.names,
        documents=documents,
    )


def _split_text(
    byte_range: tuple[SourceStream, int, int], errors: str, label: str, documents: str
) -> SplitText:
    stream, start, end = byte_range
    chunks: Iterator[str | None]
    if documents == "lines":
        chunks = _line_documents(read_text(stream, start, end, errors))
    elif documents == "files":
        chunks = _file_documents(stream, start, end, errors)
    else:
        chunks = _chunks(stream, start, end, errors)
    return SplitText(chunks, end - start, label)


def _line_documents(pieces: Iterator[str]) -> Iterator[str | None]:
    """Each non-blank line (without its newline) then None, the end-of-text marker."""
    carry = ""
    for piece in pieces:
        lines = (carry + piece).split("\n")
        carry = lines.pop()  # may continue in the next piece
        for line in lines:
            if line.strip():
                yield line.removesuffix("\r")
                yield None
    if carry.strip():
        yield carry.removesuffix("\r")
        yield None


def _file_documents(
    stream: SourceStream, start: int, end: int, errors: str
) -> Iterator[str | None]:
    """Each file's text in chunks (a final newline dropped), then None where the file ends."""
    for blocks, complete in read_files(stream, start, end, errors):
        pending = ""
        for chunk in text_chunks(blocks):
            if pending:
                yield pending
            pending = chunk
        if complete:
            pending = pending.removesuffix("\n").removesuffix("\r")
        if pending:
            yield pending
        if complete:
            yield None


def _chunks(stream: SourceStream, start: int, end: int, errors: str) -> Iterator[str]:
    return text_chunks(read_text(stream, start, end, errors))


__all__ = ["DOCUMENTS", "TOKENIZERS", "DataConfig", "prepare_corpus"]
