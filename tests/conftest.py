"""Shared test settings: deterministic property tests, a private encoding cache, and a small
text file for the data tests."""

from pathlib import Path

import pytest
from hypothesis import settings

from _text_files import TEXT, write

# Property tests draw the same examples on every run (the suite is deterministic) and are not
# timed: the CI machines are shared and noisy.
settings.register_profile("textgen", derandomize=True, deadline=None)
settings.load_profile("textgen")


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Token caches of tests go to a temporary folder, never the user's ~/.cache/textgen."""
    monkeypatch.setenv("TEXTGEN_CACHE", str(tmp_path_factory.getbasetemp() / "textgen-cache"))


@pytest.fixture(autouse=True)
def _fixed_cpu_kernel(monkeypatch):
    """The Sampler measures which CPU kernel is faster (textgen.kernels); tests fix the choice,
    so model-call counts and timings do not depend on a measurement. tests/test_kernels.py
    exercises the measurement itself."""
    monkeypatch.setenv("TEXTGEN_CPU_KERNEL", "native")


@pytest.fixture
def corpus_file(tmp_path: Path) -> Path:
    """``TEXT`` (60 lines, non-ASCII) in ``tmp_path / "corpus.txt"``."""
    return write(tmp_path / "corpus.txt", TEXT)
