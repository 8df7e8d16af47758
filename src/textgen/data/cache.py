"""The token cache: encoded splits as memory-mapped arrays, found again by a content key.

The middle of the data pipeline (sources -> token cache -> batches). `prepare_corpus`
(`textgen.data.prepare`) decides what to encode; this module stores it. Each entry is a folder
named by a key (a hash of the text, the split and the tokenizer) under `default_cache_dir`,
holding ``train.bin`` and ``val.bin`` (ids in the smallest unsigned dtype that fits the
vocabulary, written chunk by chunk) and ``meta.json`` (written last). An entry is built in a
private folder and renamed into place, so an interrupted or concurrent run never sees half of
one; a damaged entry is removed and rebuilt. Opening an entry maps the arrays without reading
them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from textgen.atomic import storage_error
from textgen.tokenizers import Tokenizer, UnknownTokenError, tokenizer_from_dict

CACHE_FORMAT_VERSION = 2  # 2: a byte-order mark starting a file is no longer text
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
        tokenizer: fitted on the training split (a character tokenizer's alphabet comes from
            both splits: `Tokenizer.fits_alphabet_only`).
        train: training split.
        val: validation split, or None when ``val_fraction=0`` and no ``val_sources``.
        cache_path: folder holding the cached arrays and ``meta.json``.
        from_cache: True when this run reused the cache instead of encoding.
        documents: ``"none"``, or how the text was cut into documents (``"lines"``,
            ``"files"``) with the end-of-text token after each.
    """

    tokenizer: Tokenizer
    train: TokenSplit
    val: TokenSplit | None
    cache_path: Path
    from_cache: bool
    documents: str = "none"


@dataclass(frozen=True)
class SplitText:
    """The text of one split, to be encoded into the cache.

    Attributes:
        chunks: the text in pieces cut at safe token boundaries (`sources.text_chunks`);
            a None stands for the end of a document: the tokenizer's end-of-text id is written
            there (and counted as one character, as the newline it usually replaces).
        num_bytes: UTF-8 bytes of that text.
        label: names the text in error messages (``"val split"``, or the file names).
    """

    chunks: Iterator[str | None]
    num_bytes: int
    label: str


def default_cache_dir() -> Path:
    """``$TEXTGEN_CACHE`` when set, else ``~/.cache/textgen``."""
    return Path(os.environ.get("TEXTGEN_CACHE") or Path.home() / ".cache" / "textgen")


def cache_key(spec: Mapping[str, Any]) -> str:
    """Name of the entry for ``spec`` (JSON-able: content digests, split, tokenizer, ...)."""
    text = json.dumps(
        {"format_version": CACHE_FORMAT_VERSION, **spec}, sort_keys=True, ensure_ascii=False
    )
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


def load_or_build(root: Path, key: str, build: Callable[[Path], None]) -> Corpus:
    """The corpus of entry ``root / key``; when it is missing, ``build(folder)`` writes it.

    ``build`` fills an empty private folder (with `write_entry`); the folder is then renamed
    into place, or removed when ``build`` raises.

    Raises:
        StorageError: the cache could not be written (disk full, no permission), naming it;
            set ``cache_dir`` (``--cache-dir``) or ``$TEXTGEN_CACHE`` to write elsewhere.
    """
    entry = root / key
    corpus = _load_entry(entry, from_cache=True)
    if corpus is not None:
        return corpus
    try:
        root.mkdir(parents=True, exist_ok=True)
        # Build in a private folder and rename it into place at the end: an interrupted run
        # leaves no half-written entry, and concurrent runs never see one.
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{key[:12]}-", dir=root))
    except OSError as error:
        raise storage_error(root, error, "token cache folder") from None
    try:
        build(tmp)
        try:
            tmp.rename(entry)
        except OSError:
            if not (entry / "meta.json").is_file():  # not a concurrent run finishing first
                raise
    except OSError as error:  # disk full, no permission: name the cache, keep nothing half-made
        raise storage_error(entry, error, "token cache entry") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    corpus = _load_entry(entry, from_cache=False)
    assert corpus is not None, f"cache entry {entry} unreadable right after writing it"
    return corpus


def write_entry(
    folder: Path,
    tokenizer: Tokenizer,
    splits: Mapping[str, SplitText | None],
    *,
    sources: list[str],
    val_sources: list[str] | None,
    documents: str = "none",
) -> None:
    """Encode the ``"train"`` and ``"val"`` splits with a fitted tokenizer into ``folder``.

    Raises:
        ValueError: a split encodes to no tokens.
        UnknownTokenError: the text holds a symbol the tokenizer cannot encode; the message
            names the split and the chunk.
    """
    dtype = _smallest_dtype(tokenizer.vocab_size)
    meta: dict[str, Any] = {
        "format_version": CACHE_FORMAT_VERSION,
        "tokenizer": tokenizer.to_dict(),
        "sources": sources,
        "val_sources": val_sources,
        "documents": documents,
    }
    for name in ("train", "val"):
        text = splits.get(name)
        if text is None:
            meta[name] = None
            continue
        num_tokens, num_chars = _encode_split(
            tokenizer, text.chunks, folder / f"{name}.bin", dtype, text.label
        )
        if num_tokens == 0:
            raise ValueError(f"the {name} split encodes to no tokens")
        meta[name] = {
            "dtype": dtype.name,
            "num_tokens": num_tokens,
            "num_chars": num_chars,
            "num_bytes": text.num_bytes,
        }
    (folder / "meta.json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")


def _smallest_dtype(vocab_size: int) -> np.dtype:
    for dtype in (np.uint8, np.uint16, np.uint32):
        if vocab_size <= np.iinfo(dtype).max + 1:
            return np.dtype(dtype)
    raise ValueError(f"vocab_size {vocab_size} does not fit in uint32")


def _encode_split(
    tokenizer: Tokenizer, chunks: Iterator[str | None], path: Path, dtype: np.dtype, name: str
) -> tuple[int, int]:
    """Append the ids of each chunk (end-of-text for a None) to ``path``; returns
    (num_tokens, num_chars)."""
    num_tokens = num_chars = 0
    eos = None
    with path.open("wb") as handle:
        for chunk in chunks:
            if chunk is None:
                if eos is None:
                    eos = _eos_array(tokenizer, dtype)
                eos.tofile(handle)
                num_tokens += 1
                num_chars += 1
                continue
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


def _eos_array(tokenizer: Tokenizer, dtype: np.dtype) -> np.ndarray:
    if tokenizer.eos_id is None:
        raise ValueError(
            f"the {tokenizer.kind} tokenizer has no end-of-text token to put between documents; "
            "use documents='none' (a bpe tokenizer needs '<|endoftext|>' among its special tokens)"
        )
    return np.array([tokenizer.eos_id], dtype=dtype)


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
    return Corpus(tokenizer, train, val, entry, from_cache, str(meta.get("documents", "none")))


def _load_split(path: Path, info: dict[str, Any]) -> TokenSplit:
    dtype = np.dtype(info["dtype"])
    num_tokens = int(info["num_tokens"])
    if path.stat().st_size != num_tokens * dtype.itemsize:
        raise ValueError(
            f"{path.name} has {path.stat().st_size} bytes, expected {num_tokens * dtype.itemsize}"
        )
    ids = np.memmap(path, dtype=dtype, mode="r", shape=(num_tokens,))
    return TokenSplit(ids, num_tokens, int(info["num_chars"]), int(info["num_bytes"]))


__all__ = [
    "CACHE_FORMAT_VERSION",
    "Corpus",
    "SplitText",
    "TokenSplit",
    "cache_key",
    "default_cache_dir",
    "load_or_build",
    "write_entry",
]
