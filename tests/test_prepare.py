"""prepare_corpus and DataConfig: splitting, tokenizer fitting, settings and their checks."""

import dataclasses
import inspect
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from _text_files import TEXT, decode_split, write
from textgen.data import DataConfig, prepare_corpus
from textgen.options import config_from_dict, describe
from textgen.tokenizers import BPETokenizer, CharTokenizer, UnknownTokenError, WordTokenizer
from textgen.validation import InvalidTypeError, InvalidValueError


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


def test_word_tokenizer_is_fitted_on_the_train_split_only(tmp_path: Path) -> None:
    path = write(tmp_path / "a.txt", "a b a b\n" * 40 + "a b zz\n" * 4)
    with pytest.raises(UnknownTokenError, match="val split.*training split only.*'zz'"):
        prepare_corpus(
            path,
            tokenizer_kind="word",
            tokenizer_options={"unknown": "error"},
            val_fraction=0.1,
            cache_dir=tmp_path / "c1",
        )
    corpus = prepare_corpus(
        path, tokenizer_kind="word", val_fraction=0.1, cache_dir=tmp_path / "c2"
    )
    assert "zz" not in corpus.tokenizer.vocab
    assert corpus.val is not None and decode_split(corpus, corpus.val) == "a b <unk>\n" * 4


def test_char_alphabet_comes_from_all_of_the_text_and_counts_from_training(
    tmp_path: Path,
) -> None:
    """Chinese-like text: the held-out part holds characters the training part lacks."""
    path = write(tmp_path / "a.txt", "天地玄黄\n" * 80 + "范\n")
    corpus = prepare_corpus(path, cache_dir=tmp_path / "c")  # the defaults
    assert "范" in corpus.tokenizer.vocab
    assert corpus.val is not None
    assert "范" in decode_split(corpus, corpus.val)
    assert "范" not in decode_split(corpus, corpus.train)  # the model never trains on them
    explicit = write(tmp_path / "val.txt", "天地范\n")
    corpus = prepare_corpus(
        write(tmp_path / "b.txt", "天地玄黄\n" * 40), val_sources=explicit, cache_dir=tmp_path / "d"
    )
    assert "范" in corpus.tokenizer.vocab


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


# ---------------------------------------------------------------- DataConfig


def test_data_config_defaults_are_the_documented_ones() -> None:
    config = DataConfig()
    assert config == DataConfig(
        sources=("shakespeare",),
        tokenizer="char",
        vocab_size=None,
        min_freq=None,
        unknown=None,
        val_fraction=0.05,
        val_files=None,
        encoding_errors="strict",
        cache_dir=None,
        pattern="*.txt",
        documents="none",
    )
    # prepare_corpus's own defaults are DataConfig's, not a second copy
    defaults = {
        name: parameter.default
        for name, parameter in inspect.signature(prepare_corpus).parameters.items()
    }
    assert defaults["val_fraction"] == config.val_fraction == 0.05
    assert defaults["tokenizer_kind"] == config.tokenizer
    assert defaults["errors"] == config.encoding_errors
    assert defaults["pattern"] == config.pattern
    assert defaults["documents"] == config.documents
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.tokenizer = "word"  # type: ignore[misc]


def test_data_config_fields_describe_themselves() -> None:
    infos = {info.name: info for info in describe(DataConfig)}
    assert list(infos) == [field.name for field in dataclasses.fields(DataConfig)]
    for info in infos.values():
        assert info.help and "\n" not in info.help and len(info.help) <= 100, info.name
    assert infos["sources"].cli_flag is None  # the command line's positional DATA
    assert infos["val_files"].cli_flag == "--val-file"
    assert infos["vocab_size"].cli_flag == "--vocab-size"
    assert infos["tokenizer"].choices == ("char", "word", "bpe")
    assert infos["unknown"].choices == ("error", "unk")
    assert infos["encoding_errors"].choices == ("strict", "replace")


def test_data_config_stores_file_lists_as_tuples() -> None:
    assert DataConfig(sources="texts/").sources == ("texts/",)
    config = DataConfig(sources=["a.txt", "b.txt"], val_files=["v.txt"])  # type: ignore[arg-type]
    assert config.sources == ("a.txt", "b.txt") and config.val_files == ("v.txt",)
    loaded = config_from_dict(DataConfig, {"sources": ["a.txt"], "val_files": ["v.txt"]})
    assert loaded.sources == ("a.txt",) and loaded.val_files == ("v.txt",)


@pytest.mark.parametrize(
    ("kwargs", "error", "field"),
    [
        ({"sources": 5}, TypeError, "sources"),
        ({"sources": (Path("a.txt"),)}, TypeError, "sources"),
        ({"sources": ()}, ValueError, "sources"),
        ({"sources": ("",)}, ValueError, "sources"),
        ({"tokenizer": 3}, TypeError, "tokenizer"),
        ({"tokenizer": "bytes"}, ValueError, "tokenizer"),
        ({"tokenizer": "bpe", "vocab_size": "big"}, TypeError, "vocab_size"),
        ({"tokenizer": "bpe", "vocab_size": True}, TypeError, "vocab_size"),
        ({"tokenizer": "bpe", "vocab_size": 256}, ValueError, "vocab_size"),
        ({"tokenizer": "word", "min_freq": 1.5}, TypeError, "min_freq"),
        ({"tokenizer": "word", "min_freq": 0}, ValueError, "min_freq"),
        ({"unknown": 1}, TypeError, "unknown"),
        ({"unknown": "skip"}, ValueError, "unknown"),
        ({"val_fraction": "0.1"}, TypeError, "val_fraction"),
        ({"val_fraction": 1.0}, ValueError, "val_fraction"),
        ({"val_fraction": -0.1}, ValueError, "val_fraction"),
        ({"val_fraction": math.nan}, ValueError, "val_fraction"),
        ({"val_files": [1]}, TypeError, "val_files"),
        ({"val_files": ()}, ValueError, "val_files"),
        ({"encoding_errors": None}, TypeError, "encoding_errors"),
        ({"encoding_errors": "ignore"}, ValueError, "encoding_errors"),
        ({"cache_dir": Path("cache")}, TypeError, "cache_dir"),
        ({"cache_dir": ""}, ValueError, "cache_dir"),
        ({"pattern": None}, TypeError, "pattern"),
        ({"pattern": ""}, ValueError, "pattern"),
    ],
)
def test_data_config_rejects_bad_values(
    kwargs: dict[str, Any], error: type[Exception], field: str
) -> None:
    with pytest.raises(error, match=field) as caught:
        DataConfig(**kwargs)
    assert isinstance(caught.value, InvalidTypeError | InvalidValueError)
    assert caught.value.parameter == field


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"vocab_size": 300}, r"vocab_size=300 does not apply to tokenizer='char'.* bpe tokenizer"),
        (
            {"tokenizer": "word", "vocab_size": 300},
            r"vocab_size=300 does not apply to tokenizer='word'.* bpe tokenizer",
        ),
        ({"min_freq": 2}, r"min_freq=2 does not apply to tokenizer='char'.* word and bpe"),
        (
            {"tokenizer": "bpe", "unknown": "unk"},
            r"unknown='unk' does not apply to tokenizer='bpe'.* char and word",
        ),
    ],
)
def test_data_config_refuses_options_of_another_tokenizer(
    kwargs: dict[str, Any], match: str
) -> None:
    with pytest.raises(InvalidValueError, match=match):
        DataConfig(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "expected_type", "expected"),
    [
        ({}, CharTokenizer, {"unknown": "error"}),
        ({"unknown": "unk"}, CharTokenizer, {"unknown": "unk"}),
        ({"tokenizer": "word"}, WordTokenizer, {"min_freq": 1, "unknown": "unk"}),
        (
            {"tokenizer": "word", "min_freq": 3, "unknown": "error"},
            WordTokenizer,
            {"min_freq": 3, "unknown": "error"},
        ),
        ({"tokenizer": "bpe"}, BPETokenizer, {"vocab_size": 2048, "min_frequency": 2}),
        (
            {"tokenizer": "bpe", "vocab_size": 300, "min_freq": 5},
            BPETokenizer,
            {"vocab_size": 300, "min_frequency": 5},
        ),
    ],
)
def test_data_config_builds_an_unfitted_tokenizer(
    kwargs: dict[str, Any], expected_type: type, expected: dict[str, Any]
) -> None:
    tokenizer = DataConfig(**kwargs).build_tokenizer()
    assert type(tokenizer) is expected_type and not tokenizer.is_fitted
    settings = tokenizer.to_dict()
    assert {key: settings[key] for key in expected} == expected


def test_data_config_prepare_equals_prepare_corpus(corpus_file: Path, tmp_path: Path) -> None:
    cache_dir = str(tmp_path / "cache")
    config = DataConfig(sources=str(corpus_file), tokenizer="word", cache_dir=cache_dir)
    corpus = config.prepare()
    assert not corpus.from_cache and isinstance(corpus.tokenizer, WordTokenizer)
    direct = prepare_corpus(corpus_file, tokenizer_kind="word", cache_dir=cache_dir)
    assert direct.from_cache and direct.cache_path == corpus.cache_path  # the same settings
    assert corpus.val is not None
    assert corpus.train.num_bytes + corpus.val.num_bytes == len(TEXT.encode())
    assert abs(corpus.val.num_bytes - 0.05 * len(TEXT.encode())) < 200  # the default 5%


def test_data_config_prepare_passes_every_setting(tmp_path: Path) -> None:
    folder = tmp_path / "texts"
    write(folder / "a.md", "héllo".encode() + b"\xff world\n")
    write(folder / "b.txt", "ignored\n")
    val_file = write(tmp_path / "val.md", "hello\n")
    config = DataConfig(
        sources=str(folder),
        unknown="unk",
        val_files=str(val_file),
        encoding_errors="replace",
        cache_dir=str(tmp_path / "cache"),
        pattern="*.md",
    )
    corpus = config.prepare()
    assert corpus.cache_path.parent == tmp_path / "cache"
    assert decode_split(corpus, corpus.train) == "héllo\ufffd world\n"
    # unknown="unk" reached the tokenizer (and "e", only in the validation text, is known:
    # the character alphabet comes from all of the text)
    assert corpus.tokenizer.unk_id == 0 and corpus.tokenizer.vocab[0] == "<unk>"
    assert corpus.val is not None and decode_split(corpus, corpus.val) == "hello\n"


def test_data_config_prepare_uses_a_given_tokenizer(corpus_file: Path, tmp_path: Path) -> None:
    resumed = CharTokenizer().fit([TEXT + "XYZ"])  # e.g. a checkpoint's tokenizer
    config = DataConfig(sources=str(corpus_file), tokenizer="word", cache_dir=str(tmp_path))
    corpus = config.prepare(resumed)
    assert corpus.tokenizer.to_dict() == resumed.to_dict()
    with pytest.raises(TypeError, match="tokenizer must be a Tokenizer or None, got str"):
        config.prepare("char")  # type: ignore[arg-type]


def test_lines_mode_puts_end_of_text_after_each_line(tmp_path: Path) -> None:
    source = write(tmp_path / "names.txt", "Ada\nBob\r\n\n  \nCleo\nDot")
    corpus = prepare_corpus(source, val_fraction=0, documents="lines", cache_dir=tmp_path / "c")
    tokenizer = corpus.tokenizer
    eos = tokenizer.eos_id
    expected = [i for name in ("Ada", "Bob", "Cleo", "Dot") for i in [*tokenizer.encode(name), eos]]
    assert corpus.train.ids.tolist() == expected and corpus.documents == "lines"
    assert "\n" not in tokenizer.vocab  # never text in lines mode: no sample can hold one
    # the mode is part of the cache key
    plain = prepare_corpus(source, val_fraction=0, cache_dir=tmp_path / "c")
    assert plain.tokenizer.eos_id not in plain.train.ids.tolist() and plain.documents == "none"


def test_files_mode_ends_each_file_with_end_of_text(tmp_path: Path) -> None:
    write(tmp_path / "d" / "a.txt", "first\npoem\n")
    write(tmp_path / "d" / "b.txt", "second")
    config = DataConfig(
        sources=str(tmp_path / "d"), tokenizer="word", documents="files", val_fraction=0,
        cache_dir=str(tmp_path / "c"),
    )  # fmt: skip
    corpus = config.prepare()
    ids = corpus.train.ids.tolist()
    eos = corpus.tokenizer.eos_id
    assert ids.count(eos) == 2 and ids[-1] == eos
    assert corpus.tokenizer.decode(ids) == "first\npoem<|endoftext|>second<|endoftext|>"


def test_documents_mode_needs_an_end_of_text_token(tmp_path: Path) -> None:
    source = write(tmp_path / "t.txt", "ab\ncd\n")
    with pytest.raises(ValueError, match="has no end-of-text token"):
        prepare_corpus(
            source, BPETokenizer(vocab_size=256, special_tokens=()), val_fraction=0,
            documents="lines", cache_dir=tmp_path / "c",
        )  # fmt: skip
    with pytest.raises(InvalidValueError, match="documents must be one of"):
        DataConfig(documents="paragraphs")
