"""Crash safety: a training process SIGKILLed at random moments, many of them inside checkpoint
writes, resumes each time without any clean-up and ends bit for bit where an uninterrupted run
ends.

Each training process is a fork of the test process (torch already imported), so the ten kills
cost milliseconds of start-up each instead of an interpreter start."""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

import pytest
import torch

from textgen import LSTMLanguageModel, ModelConfig, TrainConfig, Trainer
from textgen.atomic import SLOW_WRITE_ENV
from textgen.checkpoint import load_checkpoint
from textgen.data import prepare_corpus

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork, SIGKILL and flock"),
]

KILLS = 10
STEPS = 100


def _train(text: Path, out: Path, cache: Path, report: int) -> int:
    """One training process: resume when last.pt exists, else start afresh."""
    torch.set_num_threads(1)
    corpus = prepare_corpus([text], val_fraction=0.1, cache_dir=cache)
    torch.manual_seed(0)
    model = LSTMLanguageModel(
        ModelConfig(vocab_size=corpus.tokenizer.vocab_size, embed_dim=8, hidden_size=16)
    )
    resume = (out / "last.pt").is_file()
    config = TrainConfig(
        out_dir=str(out), batch_size=4, seq_len=16, max_steps=STEPS, eval_every=5,
        eval_batches=2, keep_last=1, lr=1e-2, warmup_steps=5, device="cpu", progress=False,
        seed=0, overwrite=not resume,
    )  # fmt: skip
    trainer = Trainer(model, corpus, config)
    os.write(report, b"T")  # training starts now
    return trainer.fit(resume=resume).step


def _fork(tmp_path: Path, out: Path, *, slow_write: bool) -> tuple[int, int]:
    """Start a training child; returns (pid, read end of its report pipe)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: train, report, and leave without running any pytest code
        code = 1
        try:
            os.close(read)
            if slow_write:
                os.environ[SLOW_WRITE_ENV] = "0.02"  # writes long enough to be hit
            else:
                os.environ.pop(SLOW_WRITE_ENV, None)
            step = _train(tmp_path / "text.txt", out, tmp_path / "cache", write)
            os.write(write, f"{step}".encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    return pid, read


def _finish(pid: int, read: int) -> str:
    chunks = []
    while chunk := os.read(read, 64):
        chunks.append(chunk)
    os.close(read)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return b"".join(chunks).decode()


def test_random_kills_then_resume_equal_an_uninterrupted_run(tmp_path):
    (tmp_path / "text.txt").write_text(
        "".join(f"line {i}: the quick brown fox {i % 7} jumps\n" for i in range(300)),
        encoding="utf-8",
    )
    assert _finish(*_fork(tmp_path, tmp_path / "reference", slow_write=False)) == f"T{STEPS}"

    rng = random.Random(14)
    out = tmp_path / "crashed"
    kills = during_write = 0
    while kills < KILLS:
        pid, read = _fork(tmp_path, out, slow_write=True)
        assert os.read(read, 1) == b"T"
        time.sleep(rng.uniform(0.01, 0.12))
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        os.close(read)
        if os.waitstatus_to_exitcode(status) == 0:  # it finished first: a very fast machine
            break
        kills += 1
        during_write += bool(list(out.glob(".*.tmp")))  # killed inside an atomic write
    assert _finish(*_fork(tmp_path, out, slow_write=False)) == f"T{STEPS}"

    assert kills == KILLS and during_write >= 2, (kills, during_write)
    assert not list(out.glob(".*.tmp"))  # the resumed run swept the litter of killed writes
    expected = load_checkpoint(tmp_path / "reference" / "last.pt").model_state
    got = load_checkpoint(out / "last.pt").model_state
    assert expected.keys() == got.keys()
    for name in expected:
        assert torch.equal(expected[name], got[name]), name
