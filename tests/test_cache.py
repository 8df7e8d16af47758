"""The token cache: reuse, atomic entries, damaged entries, its location."""

import os
from pathlib import Path

import numpy as np
import pytest

from _text_files import TEXT, write
from textgen.data import cache as token_cache
from textgen.data import prepare_corpus


def test_cache_is_reused(
    corpus_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    first = prepare_corpus(corpus_file, cache_dir=cache)
    assert not first.from_cache
    mtime = (first.cache_path / "train.bin").stat().st_mtime_ns

    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("re-encoded although the cache holds the corpus")

    monkeypatch.setattr(token_cache, "_encode_split", fail)
    second = prepare_corpus(corpus_file, cache_dir=cache)
    assert second.from_cache and second.cache_path == first.cache_path
    assert (second.cache_path / "train.bin").stat().st_mtime_ns == mtime
    assert np.array_equal(second.train.ids, first.train.ids)
    assert second.tokenizer.to_dict() == first.tokenizer.to_dict()
    monkeypatch.undo()
    other = prepare_corpus(corpus_file, tokenizer_kind="word", cache_dir=cache)
    assert other.cache_path != first.cache_path  # the tokenizer is part of the key
    write(corpus_file, TEXT + "more\n")
    changed = prepare_corpus(corpus_file, cache_dir=cache)
    assert not changed.from_cache and changed.cache_path != first.cache_path


def test_interrupted_run_leaves_no_cache_entry(
    corpus_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(token_cache, "_encode_split", interrupted)
    with pytest.raises(KeyboardInterrupt):
        prepare_corpus(corpus_file, cache_dir=cache)
    assert list(cache.iterdir()) == []
    monkeypatch.undo()
    assert not prepare_corpus(corpus_file, cache_dir=cache).from_cache


def test_damaged_cache_entry_is_rebuilt(corpus_file: Path, tmp_path: Path) -> None:
    first = prepare_corpus(corpus_file, cache_dir=tmp_path)
    expected = np.array(first.train.ids)
    with (first.cache_path / "train.bin").open("r+b") as handle:
        handle.truncate(10)
    again = prepare_corpus(corpus_file, cache_dir=tmp_path)
    assert not again.from_cache and np.array_equal(again.train.ids, expected)


def test_default_cache_dir_from_environment(
    corpus_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEXTGEN_CACHE", str(tmp_path / "env-cache"))
    corpus = prepare_corpus(corpus_file)
    assert corpus.cache_path.parent == tmp_path / "env-cache"


def test_no_temporary_files_left(corpus_file: Path, tmp_path: Path) -> None:
    prepare_corpus(corpus_file, cache_dir=tmp_path / "cache")
    names = os.listdir(tmp_path / "cache")
    assert len(names) == 1 and not names[0].startswith(".tmp")
