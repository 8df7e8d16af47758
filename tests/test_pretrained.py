"""The pretrained model in the wheel: found by name wherever a checkpoint is accepted, small,
made by scripts/train_pretrained.py (its record ships beside it), and found from an installed
wheel, not only from the source tree."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from textgen import Sampler, load_checkpoint
from textgen.checkpoint import CheckpointError
from textgen.cli import main
from textgen.pretrained import available_pretrained, pretrained_path, pretrained_record
from textgen.runs import build_trainer, plan_run

ROOT = Path(__file__).resolve().parents[1]


def test_the_bundled_model_is_small_stored_in_bf16_and_documented():
    path = pretrained_path("shakespeare")
    assert available_pretrained() == ["shakespeare"]
    assert path.stat().st_size <= 4 * 1024 * 1024
    checkpoint = load_checkpoint("shakespeare")
    assert checkpoint.path == path and checkpoint.train_state is None
    assert checkpoint.model_state["embedding.weight"].dtype == torch.bfloat16
    record = pretrained_record("shakespeare")
    assert record["held_out_loss"] - record["held_out_loss_float32"] <= 0.01
    assert record["command"].startswith("python scripts/train_pretrained.py")
    assert checkpoint.metadata["pretrained"]["held_out_loss"] == record["held_out_loss"]


def test_generate_info_and_evaluate_take_the_name(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no folder named shakespeare here
    assert main(["generate", "shakespeare", "--prompt", "ROMEO:", "--max-new-tokens", "30",
                 "--seed", "1", "--device", "cpu"]) == 0  # fmt: skip
    text = capsys.readouterr().out
    sampler = Sampler.from_checkpoint("shakespeare", device="cpu")
    assert sampler.model.embedding.weight.dtype == torch.float32  # computed in float32
    assert text == "ROMEO:" + sampler.generate("ROMEO:", max_new_tokens=30, seed=1)[0].text + "\n"
    assert main(["info", "shakespeare", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["vocab_size"] == 77
    sample = tmp_path / "sample.txt"
    sample.write_text("To be, or not to be, that is the question.\n", encoding="utf-8")
    assert main(["evaluate", "shakespeare", str(sample), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["loss"] < 3.0


def test_a_path_that_exists_wins_over_the_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "shakespeare").mkdir()
    with pytest.raises(CheckpointError, match="holds no best.pt or last.pt"):
        load_checkpoint("shakespeare")
    with pytest.raises(CheckpointError, match="bundled: shakespeare"):
        load_checkpoint("shakespear")


@pytest.mark.slow
def test_fine_tuning_starts_from_the_name(tmp_path):
    text = tmp_path / "tweets.txt"
    text.write_text("#shakespeare is 🔥 to read\n" * 30, encoding="utf-8")
    settings = {
        "data": {"sources": (str(text),), "val_fraction": 0.1},
        "train": {"out_dir": str(tmp_path / "run"), "max_steps": 1, "batch_size": 2,
                  "seq_len": 8, "progress": False, "device": "cpu"},
    }  # fmt: skip
    trainer = build_trainer(plan_run(settings, init_from="shakespeare"))
    assert trainer.tokenizer.vocab[77:] == ["#", "🔥"]
    assert trainer.model.config.vocab_size == 79
    assert trainer.fit().step == 1


@pytest.mark.slow
def test_the_model_loads_and_generates_from_an_installed_wheel(tmp_path):
    """Build the wheel from a copy of the project, unpack it as pip would, and import textgen
    from there (the editable install's finder removed), so the files come from the wheel."""
    source = tmp_path / "project"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (ROOT / name).exists():
            shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path / "dist"), str(source)],
        check=True, capture_output=True,
    )  # fmt: skip
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        assert "textgen/pretrained/shakespeare.pt" in archive.namelist()
        archive.extractall(site)
    script = (
        "import sys\n"
        "sys.meta_path = [f for f in sys.meta_path if 'editable' not in repr(f).lower()]\n"
        f"sys.path.insert(0, {str(site)!r})\n"
        "import textgen\n"
        f"assert textgen.__file__.startswith({str(site)!r}), textgen.__file__\n"
        "from textgen import Sampler\n"
        "sampler = Sampler.from_checkpoint('shakespeare', device='cpu')\n"
        "print(len(sampler.generate('ROMEO:', max_new_tokens=25, seed=0)[0].text))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "25"


@pytest.mark.slow
def test_the_script_that_makes_it_runs_and_records_how(tmp_path):
    flags = ["--max-steps", "2", "--hidden-size", "16", "--embed-dim", "8", "--num-layers", "1",
             "--batch-size", "4", "--seq-len", "16", "--device", "cpu"]  # fmt: skip
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "train_pretrained.py"), "--name", "tiny",
         "--out-dir", str(tmp_path), "--", *flags],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    record = json.loads((tmp_path / "tiny.json").read_text(encoding="utf-8"))
    assert record["steps"] == 2 and record["stored_dtype"] in ("bfloat16", "float16", "float32")
    assert record["command"] == "python scripts/train_pretrained.py -- " + " ".join(flags)
    checkpoint = load_checkpoint(tmp_path / "tiny.pt")
    assert checkpoint.metadata["pretrained"]["held_out_loss"] == record["held_out_loss"]
    assert checkpoint.model_config["hidden_size"] == 16
