"""The bundled corpora: present, readable, and named only by their own names."""

import gzip

import pytest

from textgen.data import available_corpora, corpus_path, is_corpus_name, load_corpus


def test_bundled_shakespeare_is_present_and_about_1mb():
    assert "shakespeare" in available_corpora()
    path = corpus_path("shakespeare")
    assert path.suffix == ".gz"
    text = load_corpus("shakespeare")
    assert 900_000 < len(text) < 1_100_000
    assert text.startswith("HAMLET")
    assert "To be, or not to be" in text
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        assert handle.read(100) == text[:100]


def test_unknown_corpus_names_the_choices():
    with pytest.raises(ValueError, match="unknown corpus 'nope'.*shakespeare"):
        corpus_path("nope")


def test_corpus_names_are_not_paths():
    assert is_corpus_name("shakespeare") and not is_corpus_name("shakespeare.txt.gz")
    with pytest.raises(TypeError, match="name must be a string, got int 5"):
        corpus_path(5)
