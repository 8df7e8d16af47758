"""plan_run / build_trainer: a run from its settings, checked before any data is read, with
what a resume may change decided in the library (the command line only passes settings)."""

from __future__ import annotations

import pytest

from textgen.cli import main
from textgen.run_config import load_run_data
from textgen.runs import build_trainer, plan_run

TEXT = "It was the best of times, it was the worst of times.\n" * 40
MODEL = {"embed_dim": 8, "hidden_size": 16, "num_layers": 1}


@pytest.fixture
def settings(tmp_path, monkeypatch):
    monkeypatch.setenv("TEXTGEN_CACHE", str(tmp_path / "cache"))
    text = tmp_path / "text.txt"
    text.write_text(TEXT, encoding="utf-8")
    return {
        "data": {"sources": (str(text),)},
        "model": dict(MODEL),
        "train": {
            "out_dir": str(tmp_path / "run"),
            "batch_size": 4,
            "seq_len": 8,
            "max_steps": 4,
            "eval_every": 2,
            "device": "cpu",
            "progress": False,
        },
    }


def test_a_new_run_is_built_and_its_data_recorded(settings, tmp_path):
    plan = plan_run(settings)
    result = build_trainer(plan).fit()
    assert result.step == 4
    assert load_run_data(tmp_path / "run").sources == settings["data"]["sources"]
    with pytest.raises(ValueError, match="already holds a run"):
        plan_run(settings)  # never replaced by accident
    plan_run({**settings, "train": {**settings["train"], "overwrite": True}})  # unless asked to


def test_a_resume_keeps_the_run_and_applies_only_what_is_given(settings, tmp_path):
    build_trainer(plan_run(settings)).fit()
    plan = plan_run(
        {"train": {"out_dir": settings["train"]["out_dir"], "max_steps": 6}}, resume=True
    )
    assert plan.resume and plan.tokenizer is not None
    assert (plan.train.max_steps, plan.train.batch_size) == (6, 4)  # saved batch size kept
    assert plan.data.sources == settings["data"]["sources"]  # the same text, from data.json
    assert build_trainer(plan).fit(resume=True).step == 6


@pytest.mark.parametrize(
    ("table", "change", "named"),
    [
        ("model", {"hidden_size": 32}, "hidden_size"),
        ("model", {"dropout": 0.5}, "dropout"),
        ("data", {"tokenizer": "word"}, "tokenizer"),
        ("data", {"unknown": "unk"}, "unknown"),
        ("train", {"lr": 0.5}, "lr"),
    ],
)
def test_a_resume_refuses_what_the_checkpoint_fixes(settings, table, change, named):
    build_trainer(plan_run(settings)).fit()
    changed = {**settings, table: {**settings[table], **change}}
    with pytest.raises(ValueError, match=f"{named}") as caught:
        plan_run(changed, resume=True)
    assert caught.value.parameter == named
    plan_run(settings, resume=True)  # the same values again are fine


def test_the_command_line_names_the_flags_it_refuses(settings, capsys):
    build_trainer(plan_run(settings)).fit()
    out = settings["train"]["out_dir"]
    code = main(["train", "--out", out, "--resume", "--hidden-size", "64", "--dropout", "0.5"])
    err = capsys.readouterr().err
    assert code == 1
    assert "cannot change --hidden-size, --dropout when resuming" in err


def test_a_run_without_data_json_asks_for_its_data(settings, tmp_path):
    build_trainer(plan_run(settings)).fit()
    (tmp_path / "run" / "data.json").unlink()  # as a run made with the Python API
    with pytest.raises(ValueError, match="no data.json.*give the same text again"):
        plan_run({"train": {"out_dir": settings["train"]["out_dir"]}}, resume=True)
    plan = plan_run({**settings, "model": {}}, resume=True)
    assert plan.data.sources == settings["data"]["sources"]


def test_bad_settings_fail_before_any_data_is_read(tmp_path):
    missing = {"data": {"sources": (str(tmp_path / "missing.txt"),)}}
    for table, name, value in (("train", "device", "gpu"), ("model", "hidden_size", 0)):
        # a ValueError about the setting, not the FileNotFoundError reading the data would raise
        with pytest.raises(ValueError, match=f"{name} must be .*, got {value!r}") as caught:
            plan_run({**missing, table: {name: value}})
        assert caught.value.parameter == name
