"""Files written by an earlier textgen keep working: a run folder made by textgen 0.1
(tests/data/v0.1, see its README) loads, generates, is described and resumes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from textgen import Callback, EarlyStopping, Sampler, load_checkpoint
from textgen.cli import main
from textgen.run_config import describe_run, load_run_data
from textgen.runs import build_trainer, plan_run

OLD_RUN = Path(__file__).parent / "data" / "v0.1"


@pytest.fixture
def old_run(tmp_path, monkeypatch):
    """A copy of the 0.1 run folder whose data.json points at the copied text."""
    monkeypatch.setenv("TEXTGEN_CACHE", str(tmp_path / "cache"))
    run = tmp_path / "run"
    shutil.copytree(OLD_RUN, run)
    data = json.loads((run / "data.json").read_text(encoding="utf-8"))
    data["sources"] = [str(run / "sonnet.txt")]
    (run / "data.json").write_text(json.dumps(data), encoding="utf-8")
    return run


def test_an_old_checkpoint_loads_and_generates(old_run):
    checkpoint = load_checkpoint(old_run)
    assert checkpoint.metadata["step"] == 8
    sampler = Sampler(checkpoint.build_model(), checkpoint.tokenizer)
    first = sampler.generate("Shall", max_new_tokens=20, seed=1)[0].text
    assert (
        len(first) == 20 and first == sampler.generate("Shall", max_new_tokens=20, seed=1)[0].text
    )


def test_an_old_run_is_described_with_its_old_data_json(old_run, capsys):
    assert load_run_data(old_run).val_files is None  # "val_file" of 0.1 read as val_files
    settings = describe_run(load_checkpoint(old_run / "last.pt"))
    assert settings["train"]["max_steps"] == 8 and settings["model"]["hidden_size"] == 16
    assert main(["info", str(old_run), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["step"] == 8


class StoppersAtTrainBegin(Callback):
    """Records the state of the run's early stopping once the resume restored it."""

    def on_train_begin(self, trainer):
        self.states = [c.state_dict() for c in trainer.callbacks if isinstance(c, EarlyStopping)]


def test_an_old_run_resumes_with_its_early_stopping_state(old_run):
    saved = load_checkpoint(old_run / "last.pt").train_state["callbacks"]["EarlyStopping"]
    assert saved == {"best": pytest.approx(3.47097), "bad_checks": 0}  # under 0.1's key
    # What `textgen train --resume` does. The state is checked as restored, before training:
    # the validations of the resumed run improve, after which a fresh stopper looks the same.
    train = {"out_dir": str(old_run), "max_steps": 12, "progress": False}
    plan = plan_run({"train": train}, resume=True)
    assert plan.train.early_stopping_patience == 5
    recorder = StoppersAtTrainBegin()
    assert build_trainer(plan, callbacks=[recorder]).fit(resume=plan.resume).step == 12
    assert recorder.states == [saved]
    assert load_checkpoint(old_run / "last.pt").metadata["step"] == 12
