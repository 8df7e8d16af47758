"""Disk problems: a failed write names the file, keeps the previous one and leaves no litter."""

from __future__ import annotations

import errno
import os

import pytest
import torch

from textgen import atomic
from textgen.atomic import StorageError, atomic_write_text
from textgen.checkpoint import load_checkpoint, save_checkpoint
from textgen.data import prepare_corpus
from textgen.model import LSTMLanguageModel, ModelConfig
from textgen.tokenizers import CharTokenizer
from textgen.trainer import TrainConfig, Trainer

FAILURES = [(errno.ENOSPC, "No space left on device"), (errno.EACCES, "Permission denied")]


@pytest.fixture(params=FAILURES, ids=["disk-full", "no-permission"])
def failing_fsync(request, monkeypatch):
    """Make the next atomic write fail as a full disk or a refused permission would."""
    code, reason = request.param

    def fail(fd):
        raise OSError(code, reason)

    monkeypatch.setattr(atomic.os, "fsync", fail)
    return reason


def _model_and_tokenizer(seed):
    torch.manual_seed(seed)
    tokenizer = CharTokenizer().fit(["abc\n"])
    return LSTMLanguageModel(ModelConfig(vocab_size=4, hidden_size=8)), tokenizer


def test_a_failed_checkpoint_write_keeps_the_previous_one(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    model, tokenizer = _model_and_tokenizer(0)
    save_checkpoint(path, model=model, tokenizer=tokenizer)
    before = path.read_bytes()
    for code, reason in FAILURES:
        with monkeypatch.context() as patch:
            patch.setattr(atomic.os, "fsync", lambda fd, c=code, r=reason: _raise(c, r))
            other, _ = _model_and_tokenizer(1)
            with pytest.raises(StorageError) as caught:
                save_checkpoint(path, model=other, tokenizer=tokenizer)
        assert str(path) in str(caught.value) and reason in str(caught.value)
        assert caught.value.errno == code and "\n" not in str(caught.value)
        assert path.read_bytes() == before  # the previous checkpoint, intact
        assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]  # no temporary file
    load_checkpoint(path)


def _raise(code, reason):
    raise OSError(code, reason)


def test_a_text_file_is_replaced_whole_or_not_at_all(tmp_path, failing_fsync):
    path = tmp_path / "settings.json"
    path.write_text("old", encoding="utf-8")
    with pytest.raises(StorageError, match=failing_fsync):
        atomic_write_text(path, "new", what="settings")
    assert path.read_text(encoding="utf-8") == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["settings.json"]


def test_an_unwritable_folder_is_named(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("x")
    with pytest.raises(StorageError, match=str(blocked)):
        atomic_write_text(blocked / "inside.json", "{}")


def test_a_failed_token_cache_write_names_the_cache_and_leaves_nothing(tmp_path, monkeypatch):
    text = tmp_path / "text.txt"
    text.write_text("hello world\n" * 20, encoding="utf-8")
    cache = tmp_path / "cache"

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("textgen.data.cache._encode_split", full)
    with pytest.raises(StorageError, match="No space left") as caught:
        prepare_corpus([text], cache_dir=cache)
    assert str(cache) in str(caught.value)
    assert list(cache.iterdir()) == []  # the private build folder is gone
    monkeypatch.undo()
    assert prepare_corpus([text], cache_dir=cache).train.num_tokens > 0  # works once space is back


def test_a_full_disk_during_training_stops_it_and_the_run_resumes(tmp_path, monkeypatch):
    path = tmp_path / "text.txt"
    path.write_text("the quick brown fox jumps over the lazy dog.\n" * 20, encoding="utf-8")
    corpus = prepare_corpus([path], val_fraction=0.2, cache_dir=tmp_path / "cache")

    def trainer(max_steps):
        torch.manual_seed(0)
        model = LSTMLanguageModel(
            ModelConfig(vocab_size=corpus.tokenizer.vocab_size, hidden_size=8)
        )
        config = TrainConfig(
            out_dir=str(tmp_path / "run"), batch_size=2, seq_len=8, max_steps=max_steps,
            eval_every=2, device="cpu", progress=False, seed=0,
        )  # fmt: skip
        return Trainer(model, corpus, config)

    trainer(2).fit()
    good = (tmp_path / "run" / "last.pt").read_bytes()
    real_fsync = os.fsync
    monkeypatch.setattr(atomic.os, "fsync", lambda fd: _raise(errno.ENOSPC, "No space left"))
    with pytest.raises(StorageError, match="cannot write .*run"):
        trainer(4).fit(resume=True)
    monkeypatch.setattr(atomic.os, "fsync", real_fsync)
    assert (tmp_path / "run" / "last.pt").read_bytes() == good
    assert not list((tmp_path / "run").glob(".*.tmp"))
    assert trainer(4).fit(resume=True).step == 4  # resumed from the last good checkpoint
