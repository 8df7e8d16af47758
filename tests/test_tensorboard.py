"""TensorBoardCallback: the expected tags, readable with TensorBoard's own event reader, and
each step once after a run is resumed from an earlier checkpoint."""

from __future__ import annotations

import shutil

import pytest
import torch

from textgen import TensorBoardCallback
from textgen.cli import main
from textgen.data import prepare_corpus
from textgen.model import LSTMLanguageModel, ModelConfig
from textgen.trainer import TrainConfig, Trainer

event_accumulator = pytest.importorskip(
    "tensorboard.backend.event_processing.event_accumulator",
    reason="the tensorboard extra is not installed: pip install -e '.[tensorboard]'",
)

TEXT = "abcde fghij klmno pqrst\n" * 60


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text(TEXT, encoding="utf-8")
    return prepare_corpus([path], val_fraction=0.2, cache_dir=tmp_path / "cache")


def fit(tmp_path, corpus, resume=False, **overrides):
    torch.manual_seed(0)
    model = LSTMLanguageModel(
        ModelConfig(vocab_size=corpus.tokenizer.vocab_size, embed_dim=8, hidden_size=16)
    )
    settings = dict(out_dir=str(tmp_path / "run"), batch_size=4, seq_len=8, max_steps=6)
    settings.update(eval_every=3, log_every=1, device="cpu", progress=False, seed=0)
    settings.update(tensorboard="", **overrides)
    return Trainer(model, corpus, TrainConfig(**settings)).fit(resume=resume)


def read_events(log_dir):
    reader = event_accumulator.EventAccumulator(
        str(log_dir), size_guidance={"scalars": 0, "tensors": 0}
    )
    reader.Reload()
    return reader


def steps(reader, tag):
    return [event.step for event in reader.Scalars(tag)]


def test_events_have_the_expected_tags(tmp_path, corpus):
    fit(tmp_path, corpus)
    reader = read_events(tmp_path / "run" / "tensorboard")
    scalars = set(reader.Tags()["scalars"])
    assert scalars == {
        "train/loss", "train/bits_per_char", "train/lr", "train/grad_norm", "train/tokens_per_s",
        "val/loss", "val/bits_per_char", "val/perplexity",
    }  # fmt: skip
    assert steps(reader, "train/loss") == [1, 2, 3, 4, 5, 6]
    assert steps(reader, "val/loss") == [3, 6]
    samples = reader.Tensors("sample/text_summary")
    assert [event.step for event in samples] == [3, 6]
    assert samples[0].tensor_proto.string_val[0].decode().startswith("```")


def test_a_resumed_run_logs_each_step_once(tmp_path, corpus):
    fit(tmp_path, corpus)  # steps 1..6, last.pt at 3 and at 6
    # As if the run had died after step 6 with its last checkpoint at step 3: the resumed run
    # does steps 4..6 again; the events of the first 4..6 must not count twice.
    shutil.copy(tmp_path / "run" / "last.pt", tmp_path / "at6.pt")
    fit(tmp_path / "stopped-at-3", corpus, max_steps=3)
    shutil.copy(tmp_path / "stopped-at-3" / "run" / "last.pt", tmp_path / "run" / "last.pt")
    fit(tmp_path, corpus, resume=True, max_steps=8)
    reader = read_events(tmp_path / "run" / "tensorboard")
    assert steps(reader, "train/loss") == [1, 2, 3, 4, 5, 6, 7, 8]
    assert steps(reader, "val/loss") == [3, 6, 8]
    assert len(list((tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*"))) == 2


def test_own_folder_and_interval_from_python(tmp_path, corpus):
    torch.manual_seed(0)
    model = LSTMLanguageModel(ModelConfig(vocab_size=corpus.tokenizer.vocab_size, hidden_size=16))
    config = TrainConfig(out_dir=str(tmp_path / "run"), batch_size=4, seq_len=8, max_steps=4,
                         eval_every=4, device="cpu", progress=False)  # fmt: skip
    callback = TensorBoardCallback(tmp_path / "tb", every=2, sample_length=0)
    Trainer(model, corpus, config, callbacks=[callback]).fit()
    reader = read_events(tmp_path / "tb")
    assert steps(reader, "train/lr") == [2, 4]
    assert reader.Tags()["tensors"] == []
    with pytest.raises(ValueError, match="every"):
        TensorBoardCallback(tmp_path, every=0)


def test_cli_flag_alone_means_the_run_folder(tmp_path, corpus, capsys):
    text = tmp_path / "text.txt"
    out = tmp_path / "cli-run"
    argv = ["train", str(text), "--out", str(out), "--max-steps", "2", "--eval-every", "2"]
    argv += ["--hidden-size", "8", "--embed-dim", "4", "--num-layers", "1", "--batch-size", "2"]
    argv += ["--seq-len", "8", "--device", "cpu", "--quiet", "--tensorboard"]
    assert main(argv) == 0
    assert steps(read_events(out / "tensorboard"), "val/loss") == [2]
    custom = tmp_path / "tb-custom"
    argv = [*argv[:3], str(tmp_path / "cli-run-2"), *argv[4:], str(custom)]
    assert main(argv) == 0
    assert steps(read_events(custom), "val/loss") == [2]
