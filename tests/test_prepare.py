"""prepare_corpus and DataConfig: splitting, tokenizer fitting, settings and their checks."""

from pathlib import Path

import numpy as np
import pytest

from _text_files import TEXT, decode_split, write
from textgen.data import prepare_corpus
from textgen.tokenizers import CharTokenizer, UnknownTokenError


def test_prepare_splits_from_the_end_and_round_trips(corpus_file: Path, tmp_path: Path) -> None:
    corpus = prepare_corpus(corpus_file, val_fraction=0.1, cache_dir=tmp_path / "cache")
    assert corpus.val is not None
    train, val = decode_split(corpus, corpus.train), decode_split(corpus, corpus.val)
    assert train + val == TEXT
    assert train.endswith("\n")  # split moved to a line start
    assert abs(len(val.encode()) - 0.1 * len(TEXT.encode())) < 200
    assert corpus.train.ids.dtype == np.uint8 and isinstance(corpus.train.ids, np.memmap)
    assert corpus.train.num_tokens == len(corpus.train.ids) == len(train)
    assert corpus.train.num_chars == len(train)
    assert corpus.train.num_bytes == len(train.encode("utf-8"))
    assert corpus.val.num_bytes == len(val.encode("utf-8"))


def test_tokenizer_is_fitted_on_the_train_split_only(tmp_path: Path) -> None:
    path = write(tmp_path / "a.txt", "abab\n" * 40 + "abzz\n" * 4)
    with pytest.raises(UnknownTokenError, match="val split.*training split only.*'z'"):
        prepare_corpus(path, val_fraction=0.1, cache_dir=tmp_path / "c1")
    corpus = prepare_corpus(
        path, tokenizer_options={"unknown": "unk"}, val_fraction=0.1, cache_dir=tmp_path / "c2"
    )
    assert "z" not in corpus.tokenizer.vocab
    assert corpus.val is not None and decode_split(corpus, corpus.val) == "ab<unk><unk>\n" * 4


def test_given_fitted_tokenizer_is_used_as_is(corpus_file: Path, tmp_path: Path) -> None:
    tokenizer = CharTokenizer().fit([TEXT + "XYZ"])
    corpus = prepare_corpus(corpus_file, tokenizer, val_fraction=0, cache_dir=tmp_path)
    assert corpus.val is None
    assert corpus.tokenizer.to_dict() == tokenizer.to_dict()


def test_explicit_validation_sources(corpus_file: Path, tmp_path: Path) -> None:
    val_file = write(tmp_path / "val.txt", "the fox\n")
    corpus = prepare_corpus(corpus_file, val_sources=val_file, cache_dir=tmp_path / "c")
    assert decode_split(corpus, corpus.train) == TEXT
    assert corpus.val is not None and decode_split(corpus, corpus.val) == "the fox\n"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"val_fraction": 1.0}, r"val_fraction must be a number in \[0, 1\), got 1.0"),
        ({"errors": "ignore"}, "errors must be one of 'strict', 'replace', got 'ignore'"),
        ({"tokenizer_kind": "bytes"}, "unknown tokenizer kind 'bytes'"),
    ],
)
def test_bad_arguments(corpus_file: Path, tmp_path: Path, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        prepare_corpus(corpus_file, cache_dir=tmp_path, **kwargs)
