"""Data pipeline: text files -> cached, memory-mapped token ids -> ``(x, y)`` training batches.

`prepare_corpus` reads the sources (`textgen.sources`), splits off validation text from the end,
fits the tokenizer on the training part only, and encodes both parts chunk by chunk into
NumPy memory-mapped files in a cache keyed by the content and the tokenizer, so the next run
just opens them. `StreamBatcher` (truncated BPTT over contiguous streams) and
`RandomWindowBatcher` (shuffled windows) turn ids into int64 ``(B, T)`` batches with ``y`` being
``x`` shifted by one, and keep a cursor that a checkpoint can save and restore.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from textgen import sources as _sources
from textgen.batching import RandomWindowBatcher, StreamBatcher, clamp_batch_size
from textgen.sources import SourceLike, SourceStream
from textgen.tokenizers import Tokenizer, UnknownTokenError, build_tokenizer, tokenizer_from_dict

__all__ = [
    "Corpus",
    "RandomWindowBatcher",
    "StreamBatcher",
    "TokenSplit",
    "clamp_batch_size",
    "default_cache_dir",
    "prepare_corpus",
]

CACHE_FORMAT_VERSION = 1
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TokenSplit:
    """The token ids of one split and the size of the text they cover.

    Attributes:
        ids: 1-D unsigned array (uint8/16/32, read-only memory map) of shape (num_tokens,).
        num_tokens: ``len(ids)``.
        num_chars: characters of the split's text (for bits per character).
        num_bytes: UTF-8 bytes of the split's text (for bits per byte).
    """

    ids: np.ndarray
    num_tokens: int
    num_chars: int
    num_bytes: int


@dataclass(frozen=True)
class Corpus:
    """A prepared corpus: fitted tokenizer, train ids, optional validation ids.

    Attributes:
        tokenizer: fitted on the training split only.
        train: training split.
        val: validation split, or None when ``val_fraction=0`` and no ``val_sources``.
        cache_path: folder holding the cached arrays and ``meta.json``.
        from_cache: True when this run reused the cache instead of encoding.
    """

    tokenizer: Tokenizer
    train: TokenSplit
    val: TokenSplit | None
    cache_path: Path
    from_cache: bool


def default_cache_dir() -> Path:
    """``$TEXTGEN_CACHE`` when set, else ``~/.cache/textgen``."""
    return Path(os.environ.get("TEXTGEN_CACHE") or Path.home() / ".cache" / "textgen")


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
        ValueError: empty corpus, invalid UTF-8, an empty split, or a bad argument.
        UnknownTokenError: validation text holds a symbol the training text lacks (and the
            tokenizer maps no unknowns).

    Example:
        >>> corpus = prepare_corpus("shakespeare", cache_dir=tmp)  # doctest: +SKIP
        >>> corpus.train.ids.dtype, corpus.tokenizer.vocab_size  # doctest: +SKIP
        (dtype('uint8'), 65)
    """
    if isinstance(val_fraction, bool) or not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
    train_stream = _sources.scan(_sources.resolve_sources(sources, pattern), errors)
    if train_stream.num_bytes == 0:
        raise ValueError(f"corpus is empty: {', '.join(train_stream.names)}")
    val_stream = None
    if val_sources is not None:
        val_stream = _sources.scan(_sources.resolve_sources(val_sources, pattern), errors)
        if val_stream.num_bytes == 0:
            raise ValueError(f"validation corpus is empty: {', '.join(val_stream.names)}")
    if tokenizer is None:
        tokenizer = build_tokenizer(tokenizer_kind, **(tokenizer_options or {}))

    key = _cache_key(train_stream, val_stream, val_fraction, errors, tokenizer)
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    entry = root / key
    corpus = _load_entry(entry, from_cache=True)
    if corpus is not None:
        return corpus
    root.mkdir(parents=True, exist_ok=True)
    # Build in a private folder and rename it into place at the end: an interrupted run
    # leaves no half-written entry, and concurrent runs never see one.
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{key[:12]}-", dir=root))
    try:
        _build_entry(tmp, tokenizer, train_stream, val_stream, val_fraction, errors)
        try:
            tmp.rename(entry)
        except OSError:
            if not (entry / "meta.json").is_file():  # not a concurrent run finishing first
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    corpus = _load_entry(entry, from_cache=False)
    assert corpus is not None, f"cache entry {entry} unreadable right after writing it"
    return corpus


def _cache_key(
    train: SourceStream,
    val: SourceStream | None,
    val_fraction: float,
    errors: str,
    tokenizer: Tokenizer,
) -> str:
    spec = {
        "format_version": CACHE_FORMAT_VERSION,
        "train": train.digest,
        "val": val.digest if val is not None else None,
        "val_fraction": None if val is not None else val_fraction,
        "errors": errors,
        "tokenizer": tokenizer.to_dict(),
        "fit": not tokenizer.is_fitted,
    }
    text = json.dumps(spec, sort_keys=True, ensure_ascii=False)
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


def _build_entry(
    folder: Path,
    tokenizer: Tokenizer,
    train_stream: SourceStream,
    val_stream: SourceStream | None,
    val_fraction: float,
    errors: str,
) -> None:
    """Fit (if needed) and encode into ``folder``: train.bin, val.bin, meta.json (last)."""
    total = train_stream.num_bytes
    train_range = (train_stream, 0, total)
    val_range = None if val_stream is None else (val_stream, 0, val_stream.num_bytes)
    if val_stream is None and val_fraction > 0:
        split = _sources.split_point(train_stream, val_fraction)
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
    dtype = _smallest_dtype(tokenizer.vocab_size)
    meta: dict[str, Any] = {
        "format_version": CACHE_FORMAT_VERSION,
        "tokenizer": tokenizer.to_dict(),
        "sources": train_stream.names,
        "val_sources": None if val_stream is None else val_stream.names,
    }
    for name, byte_range in (("train", train_range), ("val", val_range)):
        if byte_range is None:
            meta[name] = None
            continue
        # With no validation part the "train split" is simply the text (e.g. `textgen evaluate`)
        label = f"{name} split" if val_range is not None else ", ".join(train_stream.names)
        num_tokens, num_chars = _encode_split(
            tokenizer, _chunks(*byte_range, errors), folder / f"{name}.bin", dtype, label
        )
        if num_tokens == 0:
            raise ValueError(f"the {name} split encodes to no tokens")
        meta[name] = {
            "dtype": dtype.name,
            "num_tokens": num_tokens,
            "num_chars": num_chars,
            "num_bytes": byte_range[2] - byte_range[1],
        }
    (folder / "meta.json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")


def _chunks(stream: SourceStream, start: int, end: int, errors: str) -> Iterator[str]:
    return _sources.text_chunks(_sources.read_text(stream, start, end, errors))


def _smallest_dtype(vocab_size: int) -> np.dtype:
    for dtype in (np.uint8, np.uint16, np.uint32):
        if vocab_size <= np.iinfo(dtype).max + 1:
            return np.dtype(dtype)
    raise ValueError(f"vocab_size {vocab_size} does not fit in uint32")


def _encode_split(
    tokenizer: Tokenizer, chunks: Iterator[str], path: Path, dtype: np.dtype, name: str
) -> tuple[int, int]:
    """Append the ids of each chunk to ``path``; returns (num_tokens, num_chars)."""
    num_tokens = num_chars = 0
    with path.open("wb") as handle:
        for chunk in chunks:
            try:
                ids = tokenizer.encode_array(chunk)
            except UnknownTokenError as error:
                hint = " (the vocabulary comes from the training split only)" * (
                    name == "val split"
                )
                raise UnknownTokenError(
                    f"{name}, in the chunk starting at character {num_chars}{hint}: {error}"
                ) from error
            ids.astype(dtype, copy=False).tofile(handle)
            num_tokens += len(ids)
            num_chars += len(chunk)
    return num_tokens, num_chars


def _load_entry(entry: Path, *, from_cache: bool) -> Corpus | None:
    """The corpus cached in ``entry``, or None when it is missing or damaged (then removed)."""
    meta_path = entry / "meta.json"
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("format_version") != CACHE_FORMAT_VERSION:
            raise ValueError(f"format_version {meta.get('format_version')!r}")
        tokenizer = tokenizer_from_dict(meta["tokenizer"])
        train = _load_split(entry / "train.bin", meta["train"])
        val = None if meta["val"] is None else _load_split(entry / "val.bin", meta["val"])
    except (OSError, KeyError, TypeError, ValueError) as error:
        logger.warning("ignoring damaged cache entry %s: %s", entry, error)
        shutil.rmtree(entry, ignore_errors=True)
        return None
    return Corpus(tokenizer, train, val, entry, from_cache)


def _load_split(path: Path, info: dict[str, Any]) -> TokenSplit:
    dtype = np.dtype(info["dtype"])
    num_tokens = int(info["num_tokens"])
    if path.stat().st_size != num_tokens * dtype.itemsize:
        raise ValueError(
            f"{path.name} has {path.stat().st_size} bytes, expected {num_tokens * dtype.itemsize}"
        )
    ids = np.memmap(path, dtype=dtype, mode="r", shape=(num_tokens,))
    return TokenSplit(ids, num_tokens, int(info["num_chars"]), int(info["num_bytes"]))
