"""Reading corpus text: paths and bundled corpus names -> UTF-8 byte ranges -> text chunks.

The first step of the data pipeline (sources -> token cache -> batches): `textgen.data.cache`
encodes what this module reads. Sources are files (``.gz`` decompressed transparently), folders
(searched recursively) or bundled corpus names (`textgen.data.corpora`). All sources form one
byte stream, read a few MiB at a time so a corpus never sits in memory; a ``"\\n"`` is inserted
after a file that does not end with one, so the last word of a file never merges with the first
word of the next, and a UTF-8 byte-order mark starting a file is dropped. Positions are byte
offsets in that stream.
"""

from __future__ import annotations

import codecs
import fnmatch
import gzip
import hashlib
import re
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from textgen.data.corpora import available_corpora, corpus_path, is_corpus_name
from textgen.validation import InvalidTypeError, InvalidValueError, check_choice, check_str

READ_SIZE = 1 << 22  # bytes per read: large enough for speed, small enough for memory
SourceLike = str | Path
ENCODING_ERRORS = ("strict", "replace")
BOM = "\ufeff"  # a UTF-8 byte-order mark at the start of a file is dropped, never text  # the ``errors`` accepted: stop, or use U+FFFD


@dataclass(frozen=True)
class Segment:
    """One piece of the byte stream: a file (maybe gzip) or a literal separator."""

    name: str
    path: Path | None = None
    literal: bytes = b""

    @property
    def compressed(self) -> bool:
        return self.path is not None and self.path.suffix == ".gz"


@dataclass(frozen=True)
class SourceStream:
    """Segments with their decoded sizes; ``digest`` hashes the whole byte stream."""

    segments: list[Segment]
    sizes: list[int]
    digest: str

    @property
    def num_bytes(self) -> int:
        return sum(self.sizes)

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.segments if s.path is not None]


def resolve_sources(
    sources: SourceLike | Sequence[SourceLike], pattern: str = "*.txt"
) -> list[Segment]:
    """Files named by ``sources``: paths, folders (recursively ``pattern`` and ``pattern + ".gz"``,
    sorted), or bundled corpus names such as ``"shakespeare"``.

    Raises:
        FileNotFoundError: a path does not exist and is not a bundled corpus name.
        TypeError: a source is not a str or Path.
        ValueError: no sources, or a folder holds no matching file.
    """
    check_str("pattern", pattern)
    items = [sources] if isinstance(sources, (str, Path)) else list(sources)
    if not items:
        raise InvalidValueError(
            "sources", "sources is empty; give a file, a folder or a bundled corpus name"
        )
    segments: list[Segment] = []
    for item in items:
        if not isinstance(item, (str, Path)):
            raise InvalidTypeError(
                "sources", f"a source must be a str or Path, got {type(item).__name__} {item!r}"
            )
        path = Path(item)
        if isinstance(item, str) and not path.exists() and is_corpus_name(item):
            segments.append(Segment(name=f"corpus {item!r}", path=corpus_path(item)))
        elif path.is_dir():
            files = sorted(
                p
                for p in path.rglob("*")
                if p.is_file()
                and (fnmatch.fnmatch(p.name, pattern) or fnmatch.fnmatch(p.name, pattern + ".gz"))
            )
            if not files:
                raise InvalidValueError(
                    "sources", f"folder {path} holds no files matching {pattern!r}"
                )
            segments.extend(Segment(name=str(p), path=p) for p in files)
        elif path.is_file():
            segments.append(Segment(name=str(path), path=path))
        else:
            raise FileNotFoundError(
                f"source {str(item)!r} does not exist (not a file, a folder or a bundled corpus;"
                f" bundled corpora: {', '.join(available_corpora())})"
            )
    return segments


def _open(segment: Segment) -> BinaryIO:
    assert segment.path is not None
    if segment.compressed:
        return gzip.open(segment.path, "rb")  # type: ignore[return-value]
    return segment.path.open("rb")


def _iter_raw(segment: Segment, start: int = 0, end: int | None = None) -> Iterator[bytes]:
    """Decoded (decompressed) bytes ``[start, end)`` of one segment, in blocks."""
    if segment.path is None:
        yield segment.literal[start:end]
        return
    try:
        with _open(segment) as handle:
            if start:
                handle.seek(start)  # gzip emulates this by reading forward
            position = start
            while end is None or position < end:
                size = READ_SIZE if end is None else min(READ_SIZE, end - position)
                block = handle.read(size)
                if not block:
                    return
                position += len(block)
                yield block
    except (EOFError, gzip.BadGzipFile, zlib.error) as error:
        raise InvalidValueError(
            "sources",
            f"{segment.name}: not a readable gzip file (truncated, damaged, or not gzip at "
            f"all: {error}); recompress it, or remove the .gz suffix if it is plain text",
        ) from None


def _decode(segment: Segment, blocks: Iterable[bytes], start: int, errors: str) -> Iterator[str]:
    """Text of ``blocks`` (segment bytes from offset ``start``); bad UTF-8 names file + offset."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors)
    consumed = start  # stream offset of the bytes fed so far
    at_file_start = start == 0 and segment.path is not None
    for block in _with_end(blocks):
        # An error's start counts from the decoder's pending bytes, which precede this block.
        base = consumed - len(decoder.getstate()[0])
        try:
            text = decoder.decode(block, final=not block)
        except UnicodeDecodeError as error:
            where = " of the decompressed data" if segment.compressed else ""
            raise InvalidValueError(
                "encoding_errors",
                f"{segment.name}: invalid UTF-8 at byte offset {base + error.start}{where} "
                f"({error.reason}); use encoding_errors='replace' to replace bad bytes",
            ) from None
        consumed += len(block)
        if at_file_start and text:
            # A UTF-8 byte-order mark (Windows editors write one) is a marker, not text.
            text, at_file_start = text.removeprefix(BOM), False
        if text:
            yield text


def _with_end(blocks: Iterable[bytes]) -> Iterator[bytes]:
    """``blocks`` (all non-empty) followed by one empty block that flushes the decoder."""
    for block in blocks:
        if block:
            yield block
    yield b""


def scan(segments: list[Segment], errors: str = "strict") -> SourceStream:
    """Sizes and content hash of the stream; with ``errors="strict"`` also checks the UTF-8.

    Raises:
        ValueError: invalid UTF-8 (strict), naming the file and the byte offset, or ``errors``
            is not one of `ENCODING_ERRORS`.
    """
    check_choice("errors", errors, ENCODING_ERRORS)
    digest = hashlib.blake2b(digest_size=20)
    stream: list[Segment] = []
    sizes: list[int] = []
    for index, segment in enumerate(segments):
        size = 0
        last = b""

        def blocks(segment: Segment = segment) -> Iterator[bytes]:
            nonlocal size, last
            for block in _iter_raw(segment):
                digest.update(block)
                size += len(block)
                last = block[-1:]
                yield block

        if errors == "strict":
            for _ in _decode(segment, blocks(), 0, errors):
                pass
        else:
            for _ in blocks():
                pass
        stream.append(segment)
        sizes.append(size)
        if size and last != b"\n" and index < len(segments) - 1:
            stream.append(Segment(name="separator", literal=b"\n"))
            sizes.append(1)
            digest.update(b"\n")
        digest.update(b"\0")  # file boundaries are part of the content
    return SourceStream(stream, sizes, digest.hexdigest())


def _pieces(stream: SourceStream, start: int, end: int) -> Iterator[tuple[Segment, int, int]]:
    """(segment, local start, local end) for the segments overlapping ``[start, end)``."""
    offset = 0
    for segment, size in zip(stream.segments, stream.sizes, strict=True):
        lo, hi = max(start, offset), min(end, offset + size)
        if lo < hi:
            yield segment, lo - offset, hi - offset
        offset += size


def read_bytes(stream: SourceStream, start: int, end: int) -> bytes:
    """Bytes ``[start, end)`` of the stream (for small ranges)."""
    return b"".join(
        block
        for segment, lo, hi in _pieces(stream, start, end)
        for block in _iter_raw(segment, lo, hi)
    )


def read_text(stream: SourceStream, start: int, end: int, errors: str) -> Iterator[str]:
    """Text of bytes ``[start, end)`` (both at character boundaries), in blocks."""
    for segment, lo, hi in _pieces(stream, start, end):
        yield from _decode(segment, _iter_raw(segment, lo, hi), lo, errors)


def read_files(
    stream: SourceStream, start: int, end: int, errors: str
) -> Iterator[tuple[Iterator[str], bool]]:
    """Per file overlapping bytes ``[start, end)``: its text there, in blocks, and whether the
    range holds the file's end. Separators between files are skipped (documents mode: each
    file is one document, however it ends)."""
    offset = 0
    for segment, size in zip(stream.segments, stream.sizes, strict=True):
        lo, hi = max(start, offset), min(end, offset + size)
        if lo < hi and segment.path is not None:
            local = lo - offset, hi - offset
            blocks = _decode(segment, _iter_raw(segment, *local), local[0], errors)
            yield blocks, local[1] == size
        offset += size


def split_point(stream: SourceStream, val_fraction: float) -> int:
    """Byte offset where validation starts: ``(1 - val_fraction)`` of the stream, moved just past
    the next newline when one is near, else to the next character boundary."""
    total = stream.num_bytes
    target = int(total * (1.0 - val_fraction))
    window = min(1 << 16, max((total - target) // 2, 1))
    data = read_bytes(stream, target, min(target + window, total))
    newline = data.find(b"\n")
    if newline >= 0:
        return target + newline + 1
    skip = 0
    while skip < len(data) and 0x80 <= data[skip] < 0xC0:  # UTF-8 continuation bytes
        skip += 1
    return target + skip


# Safe places to cut text between two encode calls: just before a newline ("\n" or "\r\n") that
# lies between non-space characters, else just before a lone space between non-space
# characters. No word, whitespace run or GPT-2 style pre-token spans such a cut (a pre-token
# never runs from a non-space character into the whitespace after it), so encoding chunk by
# chunk equals encoding the whole text.
_NEWLINE_CUT = re.compile(r"\S(?=\r?\n\S)")
_SPACE_CUT = re.compile(r"\S(?= \S)")
_MAX_CARRY = 16 << 20  # text with no safe cut at all is cut anyway past this many characters
_LOOKAHEAD = 3  # characters a cut pattern looks past its cut


def _last_cut(text: str, start: int = 0) -> int:
    """Offset of the last safe cut in ``text[start:]`` (0: none), newline cuts first.

    Searches the end of the text first, in windows growing eightfold: a cut depends only on
    the characters at and after it, so the last match in a window ending at the text's end is
    the last in all of it, and a text with cuts anywhere near its end is not scanned whole
    (scanning every match cost most of the time of preparing a large corpus).
    """
    for pattern in (_NEWLINE_CUT, _SPACE_CUT):
        window = 4096
        while True:
            low = max(start, len(text) - window)
            cut = 0
            for match in pattern.finditer(text, low):
                cut = match.end()
            if cut:
                return cut
            if low == start:
                break
            window *= 8
    return 0


def text_chunks(pieces: Iterable[str], chunk_chars: int | None = None) -> Iterator[str]:
    """Re-cut text ``pieces`` into chunks of about ``chunk_chars`` at safe token boundaries.

    Text with no safe cut at all is cut anyway once more than 16 Mi characters pile up.
    """
    chunk_chars = READ_SIZE if chunk_chars is None else chunk_chars
    buffer: list[str] = []
    pending = 0  # characters added since the last look for a cut
    searched = 0  # the carried text before this offset holds no cut: never scan it again
    for piece in pieces:
        buffer.append(piece)
        pending += len(piece)
        if pending < chunk_chars:  # look (and join) once per chunk_chars of new text: linear
            continue
        pending = 0
        text = "".join(buffer)
        cut = _last_cut(text, max(searched - _LOOKAHEAD, 0))
        if not cut and len(text) > _MAX_CARRY:
            cut = len(text)
        if cut:
            yield text[:cut]
            text = text[cut:]
        buffer, searched = [text], 0 if cut else len(text)
    text = "".join(buffer)
    if text:
        yield text
