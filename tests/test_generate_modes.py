"""``textgen generate`` for scripts and people: ``--jsonl``, ``--interactive``, and
`Sampler.from_checkpoint` (the one-call loader they share)."""

from __future__ import annotations

import io
import json

import pytest

from textgen import Sampler
from textgen.cli import main
from textgen.cli.interactive import _settings_parser, apply_command
from textgen.sampler import SampleConfig

TEXT = "Shall I compare thee to a summer's day?\nThou art more lovely and more temperate.\n" * 20
TINY = ["--embed-dim", "8", "--hidden-size", "16", "--num-layers", "1", "--batch-size", "4"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("generate")
    text = folder / "sonnet.txt"
    text.write_text(TEXT, encoding="utf-8")
    out = folder / "run"
    argv = ["train", str(text), "--out", str(out), "--max-steps", "2", "--seq-len", "8"]
    assert main([*argv, *TINY, "--quiet", "--device", "cpu"]) == 0
    return out


def test_jsonl_prints_one_object_per_sample_and_nothing_else(run_dir, capsys):
    argv = ["generate", str(run_dir), "--jsonl", "--prompt", "Shall", "--num-samples", "3"]
    assert main([*argv, "--max-new-tokens", "12", "--seed", "5", "--stop", "e"]) == 0
    lines = capsys.readouterr().out.splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == 3
    for i, record in enumerate(records):
        assert set(record) == {"text", "prompt", "tokens", "finish_reason", "seed"}
        assert record["prompt"] == "Shall" and record["seed"] == 5 + i
        assert record["finish_reason"] in ("eos", "stop", "length")
        assert record["finish_reason"] != "length" or record["tokens"] == 12
        assert "e" not in record["text"]
    # the seed reproduces the sample
    sampler = Sampler.from_checkpoint(run_dir, device="cpu")
    again = sampler.generate("Shall", max_new_tokens=12, seed=6, stop=("e",))[0]
    assert again.text == records[1]["text"]


def test_jsonl_without_a_seed_reports_the_one_it_used(run_dir, capsys):
    assert main(["generate", str(run_dir), "--jsonl", "--max-new-tokens", "5"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert isinstance(record["seed"], int)


def test_interactive_answers_prompts_from_a_pipe_and_takes_settings(run_dir, capsys, monkeypatch):
    commands = "Shall\n:max-new-tokens 7\n:greedy\n:temperature 0\n:nope 1\nThou\n"
    monkeypatch.setattr("sys.stdin", io.StringIO(commands))
    argv = ["generate", str(run_dir), "--interactive", "--max-new-tokens", "4", "--seed", "1"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    answers = captured.out.splitlines()
    assert len(answers) == 2  # one line per prompt, nothing else on stdout
    sampler = Sampler.from_checkpoint(run_dir, device="cpu")
    assert answers[0] == sampler.generate("Shall", max_new_tokens=4, seed=1)[0].text
    assert answers[1] == sampler.generate("Thou", max_new_tokens=7, greedy=True)[0].text
    errors = [line for line in captured.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 2 and "temperature" in errors[0] and "nope" in errors[1]


def test_settings_commands_use_the_flag_names():
    parser = _settings_parser()
    config = apply_command(SampleConfig(), "temperature 0.7", parser)
    config = apply_command(config, "top_p 0.9", parser)
    config = apply_command(config, "stop '\n' END", parser)
    assert (config.temperature, config.top_p, config.stop) == (0.7, 0.9, ("\n", "END"))
    assert apply_command(config, "top-p none", parser).top_p is None
    with pytest.raises(ValueError, match="unrecognized arguments|ambiguous|expected"):
        apply_command(config, "temperature", parser)


def test_from_checkpoint_names_what_is_missing(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        Sampler.from_checkpoint(tmp_path / "nothing.pt")
