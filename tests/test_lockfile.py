"""RunLock: one writer per run folder; the kernel frees the lock when the holder dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest
import torch

from textgen.cli import main
from textgen.data import prepare_corpus
from textgen.lockfile import RunFolderBusyError, RunLock
from textgen.model import LSTMLanguageModel, ModelConfig
from textgen.trainer import TrainConfig, Trainer

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="advisory locks are POSIX only")


@pytest.fixture
def holder(tmp_path):
    """A separate process holding the lock on ``tmp_path / "run"`` until killed."""
    folder = tmp_path / "run"
    code = textwrap.dedent(
        f"""
        import sys, time
        from textgen.lockfile import RunLock
        lock = RunLock({str(folder)!r}).acquire()
        print("locked", flush=True)
        time.sleep(60)
        """
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=os.environ.copy()
    )
    assert process.stdout is not None and process.stdout.readline().strip() == "locked"
    yield folder, process
    process.kill()
    process.wait()


def test_a_second_writer_is_refused_naming_the_folder_and_the_holder(holder):
    folder, process = holder
    with pytest.raises(RunFolderBusyError) as caught:
        RunLock(folder).acquire()
    message = str(caught.value)
    assert str(folder) in message and f"process {process.pid}" in message
    assert "\n" not in message
    with pytest.raises(RunFolderBusyError):
        RunLock(folder).check()


def test_a_killed_holder_leaves_no_stale_lock(holder):
    folder, process = holder
    process.send_signal(signal.SIGKILL)
    process.wait()
    with RunLock(folder) as lock:  # no clean-up needed
        assert lock.held
    assert (folder / ".lock").exists()  # the file stays; only the kernel's lock went away


def test_the_lock_is_released_and_can_be_taken_again(tmp_path):
    lock = RunLock(tmp_path / "run")
    with lock:
        assert lock.held
        lock.acquire()  # re-entrant for the same object
        with pytest.raises(RunFolderBusyError):  # another open file, even in this process
            RunLock(tmp_path / "run").acquire()
    assert not lock.held
    RunLock(tmp_path / "run").check()
    with RunLock(tmp_path / "run"):
        pass


def _trainer(tmp_path, **overrides):
    path = tmp_path / "text.txt"
    path.write_text("the quick brown fox jumps over the lazy dog.\n" * 20, encoding="utf-8")
    corpus = prepare_corpus([path], val_fraction=0.2, cache_dir=tmp_path / "cache")
    torch.manual_seed(0)
    model = LSTMLanguageModel(ModelConfig(vocab_size=corpus.tokenizer.vocab_size, hidden_size=8))
    settings = dict(out_dir=str(tmp_path / "run"), batch_size=2, seq_len=8, max_steps=2)
    settings.update(device="cpu", progress=False, **overrides)
    return Trainer(model, corpus, TrainConfig(**settings))


def test_a_second_trainer_on_a_busy_folder_is_refused_before_touching_it(tmp_path, holder):
    folder, _ = holder
    with pytest.raises(RunFolderBusyError):
        _trainer(tmp_path, overwrite=True).fit()
    assert sorted(p.name for p in folder.iterdir()) == [".lock"]  # nothing written or deleted


def test_training_holds_the_lock_for_the_whole_run(tmp_path):
    trainer = _trainer(tmp_path)
    seen = []

    class Probe:
        state_key = "probe"

        def __getattr__(self, name):
            return lambda *args: None

        def on_step_end(self, trainer, metrics):
            try:
                RunLock(tmp_path / "run").acquire()
            except RunFolderBusyError:
                seen.append(metrics["step"])

    trainer.callbacks.append(Probe())  # type: ignore[arg-type]
    trainer.fit()
    assert seen == [1, 2]
    RunLock(tmp_path / "run").acquire().release()  # free again after the run


def test_cli_train_into_a_busy_folder_is_one_line(tmp_path, holder, capsys):
    folder, process = holder
    code = main(["train", "--out", str(folder), "--max-steps", "1", "--quiet", "--overwrite"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1
    assert str(folder) in err and str(process.pid) in err
