"""Run configuration files: read, checked, written back by ``info --config``, and used by
``train --config`` with flags overriding them."""

from __future__ import annotations

import json

import pytest

from textgen.checkpoint import load_checkpoint
from textgen.cli import main
from textgen.data import DataConfig
from textgen.model import ModelConfig
from textgen.run_config import format_run_config, read_run_config, run_settings
from textgen.train_config import TrainConfig

TEXT = "Shall I compare thee to a summer's day?\nThou art more lovely and more temperate.\n" * 30

RUN_TOML = """\
[data]
tokenizer = "char"
val_fraction = 0.1

[model]
embed_dim = 8
hidden_size = 16
num_layers = 1

[train]
batch_size = 4
seq_len = 16
max_steps = 6
eval_every = 3
device = "cpu"
progress = false
clip_norm = "none"
"""


def run(argv, capsys):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_reading_checks_tables_keys_and_values(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text(RUN_TOML, encoding="utf-8")
    sections = read_run_config(path)
    assert sections["train"]["clip_norm"] is None  # "none" stands for None
    assert sections["model"] == {"embed_dim": 8, "hidden_size": 16, "num_layers": 1}

    cases = {
        "[trian]\nlr = 1\n": "unknown table \\[trian\\]",
        "[train]\nbatch_sise = 4\n": "\\[train\\]: unknown TrainConfig setting 'batch_sise'; "
        "did you mean 'batch_size'",
        "[train]\nbatch_size = 0\n": "batch_size must be an integer >= 1, got 0",
        "[model]\nvocab_size = 10\n": "vocab_size is decided by the data",
        "[train\n": "not valid toml",
    }
    for text, message in cases.items():
        path.write_text(text, encoding="utf-8")
        with pytest.raises(ValueError, match=message):
            read_run_config(path)
    with pytest.raises(FileNotFoundError, match="missing.toml"):
        read_run_config(tmp_path / "missing.toml")


def test_written_settings_read_back_the_same(tmp_path):
    settings = run_settings(
        DataConfig(sources=("a.txt",), tokenizer="bpe", vocab_size=300),
        ModelConfig(vocab_size=300, hidden_size=32, tie_weights=True),
        TrainConfig(clip_norm=None, max_time=60.0, lr=3e-3),
    )
    for as_json, suffix in ((False, ".toml"), (True, ".json")):
        path = tmp_path / f"run{suffix}"
        path.write_text(format_run_config(settings, as_json=as_json), encoding="utf-8")
        back = read_run_config(path)
        assert DataConfig(**back["data"]) == DataConfig(**settings["data"])
        assert ModelConfig(vocab_size=300, **back["model"]) == ModelConfig(
            vocab_size=300, **settings["model"]
        )
        assert TrainConfig(**back["train"]) == TrainConfig(**settings["train"])


@pytest.mark.slow
def test_train_from_a_file_with_flags_overriding_and_info_reproduces_it(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("TEXTGEN_CACHE", str(tmp_path / "cache"))
    text = tmp_path / "sonnet.txt"
    text.write_text(TEXT, encoding="utf-8")
    config = tmp_path / "run.toml"
    config.write_text(RUN_TOML, encoding="utf-8")
    out = tmp_path / "run"
    code, _, err = run(["train", text, "--config", config, "--out", out, "--seed", "5"], capsys)
    assert code == 0, err
    checkpoint = load_checkpoint(out / "last.pt")
    saved = checkpoint.metadata["train_config"]
    assert (saved["max_steps"], saved["clip_norm"], saved["seed"]) == (6, None, 5)
    assert checkpoint.model_config["hidden_size"] == 16

    code, printed, err = run(["info", out, "--config"], capsys)
    assert code == 0, err
    reproduced = tmp_path / "again.toml"
    reproduced.write_text(printed, encoding="utf-8")
    again = tmp_path / "again"
    code, _, err = run(["train", "--config", reproduced, "--out", again], capsys)
    assert code == 0, err
    first, second = load_checkpoint(out / "last.pt"), load_checkpoint(again / "last.pt")
    assert first.model_config == second.model_config
    for name, tensor in first.model_state.items():
        assert tensor.equal(second.model_state[name]), name  # same run, same weights

    code, printed, _ = run(["info", out, "--config", "--json"], capsys)
    assert json.loads(printed)["data"]["sources"] == [str(text.resolve())]


def test_a_bad_value_in_a_file_fails_before_any_data_is_read(tmp_path, capsys):
    config = tmp_path / "run.json"
    config.write_text(json.dumps({"train": {"device": "gpu"}}), encoding="utf-8")
    code, _, err = run(["train", "missing.txt", "--config", config], capsys)
    assert code == 1
    assert "device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got 'gpu'" in err
