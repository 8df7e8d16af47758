"""Small text files for the data tests: a multi-line, non-ASCII text, a writer for plain and
gzip files, and a decoder that turns a split back into text (to compare with what was written)."""

from __future__ import annotations

import gzip
from pathlib import Path

from textgen.data import Corpus, TokenSplit

TEXT = "".join(f"Line {i}: the quick brown fox, naïve café 😀 jumps.\n" for i in range(60))


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, str):
        text = text.encode("utf-8")
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as handle:
            handle.write(text)
    else:
        path.write_bytes(text)
    return path


def decode_split(corpus: Corpus, split: TokenSplit) -> str:
    return corpus.tokenizer.decode(split.ids.tolist())
