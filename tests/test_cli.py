import json
import math
import os
import signal
import subprocess
import sys
import time

import pytest

from textgen import Sampler
from textgen.checkpoint import load_checkpoint
from textgen.cli import main

TEXT = "Shall I compare thee to a summer's day?\nThou art more lovely and more temperate.\n" * 30
TINY = [
    "--embed-dim",
    "8",
    "--hidden-size",
    "16",
    "--num-layers",
    "1",
    "--batch-size",
    "4",
    "--seq-len",
    "16",
    "--eval-every",
    "5",
    "--device",
    "cpu",
    "--quiet",
]


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "sonnet.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TEXTGEN_CACHE", str(tmp_path / "cache"))


def run(argv, capsys):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_train_resume_generate_evaluate_info(tmp_path, text_file, cache, capsys):
    out = tmp_path / "run"
    code, _, err = run(["train", text_file, "--out", out, "--max-steps", "6", *TINY], capsys)
    assert code == 0, err
    assert {"best.pt", "last.pt", "metrics.jsonl"} <= {p.name for p in out.iterdir()}

    code, _, err = run(
        ["train", text_file, "--out", out, "--max-steps", "12", "--resume", *TINY], capsys
    )
    assert code == 0, err
    code, out_text, _ = run(["info", out, "--json"], capsys)
    info = json.loads(out_text)
    assert code == 0 and info["step"] == 12 and info["tokenizer"] == "char"
    assert info["resumable"] and info["path"].endswith("last.pt")  # a folder: the run as it stands
    last = load_checkpoint(out / "last.pt")
    assert info["parameters"] == last.build_model().num_parameters()
    assert info["vocab_size"] == len(set(TEXT)) + 1  # and end-of-text

    code, text, err = run(
        [
            "generate",
            out,
            "--prompt",
            "Thou",
            "--max-new-tokens",
            "20",
            "--seed",
            "1",
            "--output",
            tmp_path / "sample.txt",
        ],
        capsys,
    )
    assert code == 0, err
    sample = (tmp_path / "sample.txt").read_text(encoding="utf-8")
    assert text == sample + "\n" and sample.startswith("Thou") and len(sample) == 4 + 20
    code, from_last, _ = run(
        ["generate", out / "last.pt", "--prompt", "Thou", "--max-new-tokens", "20", "--seed", "1"],
        capsys,
    )
    assert code == 0
    sampler = Sampler(last.build_model(), last.tokenizer)
    assert from_last == "Thou" + sampler.generate("Thou", max_new_tokens=20, seed=1)[0].text + "\n"
    code, best, _ = run(
        ["generate", out / "best.pt", "--prompt", "Thou", "--max-new-tokens", "20", "--seed", "1"],
        capsys,
    )
    assert best == text  # the folder means best.pt; same seed, same text

    code, text, _ = run(
        [
            "generate",
            out,
            "--num-samples",
            "3",
            "--max-new-tokens",
            "10",
            "--seed",
            "2",
            "--top-k",
            "5",
            "--top-p",
            "0.9",
        ],
        capsys,
    )
    assert code == 0 and text.count("=== sample") == 3

    code, text, err = run(["evaluate", out, text_file, "--json"], capsys)
    assert code == 0, err
    metrics = json.loads(text)
    for key in ("tokens", "loss", "perplexity", "bits_per_char", "bits_per_byte"):
        assert key in metrics
    assert metrics["bits_per_char"] == pytest.approx(metrics["bits_per_byte"])  # ASCII text


@pytest.mark.parametrize(
    "argv, message",
    [
        (["generate", "missing-run"], "checkpoint missing-run does not exist"),
        (["evaluate", "missing-run", "x.txt"], "checkpoint missing-run does not exist"),
        (
            ["train", "no-such-file.txt", "--out", "{tmp}/r", "--quiet"],
            "source 'no-such-file.txt' does not exist",
        ),
        (
            [
                "train",
                "--out",
                "{tmp}/r",
                "--precision",
                "fp16",
                "--device",
                "cpu",
                "--quiet",
                "--max-steps",
                "1",
            ],
            "--precision 'fp16' needs a CUDA device",
        ),
        (["train", "--out", "{tmp}/r", "--batch-size", "0", "--quiet"], "--batch-size must be"),
    ],
)
def test_user_errors_are_one_line(tmp_path, cache, capsys, argv, message):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    code, _, err = run(argv, capsys)
    assert code != 0
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def test_generate_prompt_with_unseen_character_is_clear(tmp_path, text_file, cache, capsys):
    out = tmp_path / "run"
    assert run(["train", text_file, "--out", out, "--max-steps", "2", *TINY], capsys)[0] == 0
    code, _, err = run(["generate", out, "--prompt", "Thou ☃"], capsys)
    assert code != 0 and "'☃'" in err and "position 5" in err


def test_refuses_to_overwrite_a_run_without_resume(tmp_path, text_file, cache, capsys):
    out = tmp_path / "run"
    assert run(["train", text_file, "--out", out, "--max-steps", "2", *TINY], capsys)[0] == 0
    code, _, err = run(["train", text_file, "--out", out, "--max-steps", "2", *TINY], capsys)
    assert code != 0 and "--resume" in err


@pytest.mark.slow
def test_python_dash_m_and_help_work():
    done = subprocess.run(
        [sys.executable, "-m", "textgen", "--help"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0
    for command in ("train", "generate", "evaluate", "info"):
        assert command in done.stdout


def test_bpe_tokenizer_through_the_cli_and_bits_per_byte_comparable(
    tmp_path, text_file, cache, capsys
):
    results = {}
    for kind in ("char", "bpe"):
        out = tmp_path / kind
        extra = ["--vocab-size", "300"] if kind == "bpe" else []
        code, _, err = run(
            [
                "train",
                text_file,
                "--out",
                out,
                "--tokenizer",
                kind,
                *extra,
                "--max-steps",
                "40",
                "--lr",
                "0.02",
                *TINY,
            ],
            capsys,
        )
        assert code == 0, err
        code, text, err = run(
            ["generate", out, "--prompt", "Thou", "--max-new-tokens", "10", "--seed", "0"], capsys
        )
        assert code == 0 and text.startswith("Thou"), err
        code, text, _ = run(["evaluate", out, text_file, "--json"], capsys)
        results[kind] = json.loads(text)
    assert json.loads(run(["info", tmp_path / "bpe", "--json"], capsys)[1])["tokenizer"] == "bpe"
    # Both models learned: each scores well below a uniform guess over its own vocabulary (a
    # fresh model scores about that; any model is far below 8 bits per byte on ASCII text).
    # Bits per byte divide the bits of the scored tokens by their bytes (nearly all the text's),
    # whatever a token is: the unit in which the two compare.
    for kind, metrics in results.items():
        vocab_size = load_checkpoint(tmp_path / kind).tokenizer.vocab_size
        assert metrics["loss"] < math.log(vocab_size) - 0.25, kind
        total_bits = metrics["bits_per_token"] * metrics["tokens"]
        assert metrics["bits_per_byte"] == pytest.approx(total_bits / len(TEXT), rel=0.02), kind
    assert results["bpe"]["tokens"] < results["char"]["tokens"]


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_saves_last_and_the_run_resumes(tmp_path, text_file, signum):
    out = tmp_path / "run"
    env = {**os.environ, "TEXTGEN_CACHE": str(tmp_path / "cache"), "PYTHONUNBUFFERED": "1"}
    command = [
        sys.executable,
        "-m",
        "textgen",
        "train",
        str(text_file),
        "--out",
        str(out),
        "--max-steps",
        "100000",
        *TINY,
        "--eval-every",
        "100000",
    ]
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (out / "train_config.json").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # let it take some steps (its signal handlers are in place already)
    process.send_signal(signum)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "(signal)" in err
    step = load_checkpoint(out / "last.pt").metadata["step"]  # a very slow machine: maybe 0
    done = subprocess.run(
        [*command[:-2], "--max-steps", str(step + 2), "--resume"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert load_checkpoint(out / "last.pt").metadata["step"] == step + 2


def test_resume_keeps_the_runs_settings_and_refuses_changing_them(
    tmp_path, text_file, cache, capsys
):
    out = tmp_path / "run"
    first = ["train", text_file, "--out", out, *TINY, "--lr", "0.02", "--max-steps", "4"]
    assert run(first, capsys)[0] == 0
    # Only the new limit is given: the run's own lr, sizes and batch shape are kept.
    resume = ["train", text_file, "--out", out, "--resume", "--quiet", "--device", "cpu"]
    code, _, err = run([*resume, "--max-steps", "6"], capsys)
    assert code == 0, err
    assert load_checkpoint(out / "last.pt").metadata["train_config"]["lr"] == 0.02
    code, _, err = run([*resume, "--max-steps", "8", "--optimizer", "sgd"], capsys)
    assert code != 0 and "optimizer (was 'adamw', now 'sgd')" in err
    assert len(err.strip().splitlines()) == 1


def test_epochs_alone_are_not_capped_by_the_default_step_limit(tmp_path, text_file, cache, capsys):
    out = tmp_path / "run"
    code, _, err = run(["train", text_file, "--out", out, *TINY, "--epochs", "2"], capsys)
    assert code == 0, err
    metadata = load_checkpoint(out / "last.pt").metadata
    assert metadata["epoch"] == 2 and metadata["train_config"]["max_steps"] is None


@pytest.mark.slow
def test_a_time_budget_alone_trains_with_a_time_planned_cosine(tmp_path, text_file, cache, capsys):
    out = tmp_path / "run"
    code, _, err = run(["train", text_file, "--out", out, *TINY, "--max-time", "1"], capsys)
    assert code == 0, err
    checkpoint = load_checkpoint(out / "last.pt")
    config = checkpoint.metadata["train_config"]
    assert config["max_steps"] is None and config["schedule"] == "auto"
    assert checkpoint.train_state["scheduler"]["name"] == "cosine"  # what "auto" chose
    assert "time_plan" in checkpoint.train_state  # its length is planned (test_trainer.py)


def test_resume_reads_the_same_text_without_repeating_it(tmp_path, text_file, cache, capsys):
    out = tmp_path / "run"
    assert run(["train", text_file, "--out", out, *TINY, "--max-steps", "3"], capsys)[0] == 0
    # No DATA given: the run's data.json points at sonnet.txt, not the bundled corpus.
    code, _, err = run(["train", "--out", out, "--resume", "--max-steps", "5", "--quiet"], capsys)
    assert code == 0, err
    assert load_checkpoint(out / "last.pt").metadata["step"] == 5


@pytest.mark.slow
def test_a_time_budget_with_no_step_limit_trains(tmp_path, text_file, cache, capsys):
    out = tmp_path / "run"
    code, _, err = run(
        ["train", text_file, "--out", out, *TINY, "--max-steps", "0", "--max-time", "1"], capsys
    )
    assert code == 0, err
    assert "(max_time)" in err
    # resuming with a new limit alone lifts the step cap of the run's saved settings
    code, _, err = run(["train", "--out", out, "--resume", "--max-time", "2", "--quiet"], capsys)
    assert code == 0, err
    assert "(max_time)" in err
    config = load_checkpoint(out / "last.pt").metadata["train_config"]
    assert (config["max_steps"], config["max_time"]) == (None, 2.0)


def test_generate_takes_hugging_face_names_and_says_which_device_auto_chose(tmp_path, capsys):
    import torch

    from textgen import CharTokenizer, LSTMLanguageModel, ModelConfig, save_checkpoint

    tokenizer = CharTokenizer().fit([TEXT])
    torch.manual_seed(0)
    model = LSTMLanguageModel(ModelConfig(vocab_size=tokenizer.vocab_size, hidden_size=16))
    path = save_checkpoint(tmp_path / "model.pt", model=model, tokenizer=tokenizer)
    base = ["generate", path, "--prompt", "Thou", "--max-new-tokens", "12", "--device", "cpu"]
    code, greedy, _ = run([*base, "--greedy"], capsys)
    assert code == 0
    assert run([*base, "--no-do-sample"], capsys)[1] == greedy
    code, text, _ = run([*base, "--seed", "1", "--num-return-sequences", "2"], capsys)
    assert code == 0 and text == run([*base, "--seed", "1", "--num-samples", "2"], capsys)[1]
    assert text.count("=== sample") == 2
    code, _, err = run([*base, "--do-sample", "--greedy"], capsys)
    assert code == 1 and "contradicts" in err and len(err.strip().splitlines()) == 1
    code, _, err = run([*base[:-2], "--device", "auto"], capsys)
    assert code == 0 and err.startswith("device: ") and "(auto: " in err
