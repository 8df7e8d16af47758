"""Corpora bundled with the package, so every command runs with no data of the user's own.

The data pipeline accepts a corpus name such as ``"shakespeare"`` wherever it accepts a path
(`textgen.data.sources` resolves it); this module maps names to the gzip-compressed files
shipped inside the wheel, under ``textgen/corpora/`` (package data, not code).
"""

from __future__ import annotations

import gzip
from importlib import resources
from pathlib import Path

from textgen.validation import InvalidValueError, check_str

_CORPORA: dict[str, str] = {
    # name -> file under textgen/corpora (gzip-compressed UTF-8 text)
    "shakespeare": "shakespeare.txt.gz",
}


def available_corpora() -> list[str]:
    """Names of the bundled corpora, sorted."""
    return sorted(_CORPORA)


def is_corpus_name(name: str) -> bool:
    """True when ``name`` names a bundled corpus (and is not meant as a path)."""
    return name in _CORPORA


def corpus_path(name: str = "shakespeare") -> Path:
    """Path of the gzip-compressed file of a bundled corpus.

    Raises:
        TypeError: ``name`` is not a string.
        ValueError: ``name`` is not a bundled corpus.
    """
    check_str("name", name)
    try:
        filename = _CORPORA[name]
    except KeyError:
        raise InvalidValueError(
            "name", f"unknown corpus {name!r}; bundled corpora are {', '.join(available_corpora())}"
        ) from None
    path = Path(str(resources.files("textgen") / "corpora" / filename))
    if not path.is_file():  # pragma: no cover - a broken install
        raise FileNotFoundError(f"bundled corpus file {path} is missing; reinstall textgen")
    return path


def load_corpus(name: str = "shakespeare") -> str:
    """The whole text of a bundled corpus (about 1 MB for ``"shakespeare"``).

    Example:
        >>> text = load_corpus("shakespeare")
        >>> text[:6]
        'HAMLET'
    """
    with gzip.open(corpus_path(name), "rt", encoding="utf-8") as handle:
        return handle.read()


__all__ = ["available_corpora", "corpus_path", "is_corpus_name", "load_corpus"]
