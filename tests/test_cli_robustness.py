"""The command line with awkward input: byte-order marks, CRLF prompts, broken .gz files, an
output path that is a file, a closed pipe, an interrupted generation, a run without data.json."""

from __future__ import annotations

import gzip
import subprocess
import sys

import pytest

from textgen import Sampler
from textgen.checkpoint import load_checkpoint
from textgen.cli import main

TEXT = "the cat sat on the mat.\r\nthe dog ran to the park.\r\n" * 30
TINY = ["--max-steps", "2", "--batch-size", "2", "--seq-len", "8", "--hidden-size", "8", "--quiet"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny run trained on a file that starts with a byte-order mark and uses CRLF."""
    folder = tmp_path_factory.mktemp("cli")
    text = folder / "bom.txt"
    text.write_bytes(b"\xef\xbb\xbf" + TEXT.encode())
    cache = ["--cache-dir", str(folder / "cache")]
    assert main(["train", str(text), "--out", str(folder / "run"), *cache, *TINY]) == 0
    return folder / "run"


def test_a_byte_order_mark_is_not_text_and_crlf_is(run):
    vocab = load_checkpoint(run).tokenizer.vocab
    assert "\ufeff" not in vocab and "\r" in vocab


def test_a_prompt_file_is_read_like_training_text(run, tmp_path, capsys):
    prompt = tmp_path / "prompt.txt"
    prompt.write_bytes(b"\xef\xbb\xbfthe cat\r\nthe")
    out = tmp_path / "out.txt"
    args = ["generate", str(run), "--prompt-file", str(prompt), "--max-new-tokens", "3"]
    assert main([*args, "--seed", "0", "--output", str(out)]) == 0
    assert out.read_bytes().startswith(b"the cat\r\nthe")
    prompt.write_bytes(b"the \xff cat")
    assert main(args) == 1
    assert f"prompt file {prompt}: invalid UTF-8 at byte offset 4" in capsys.readouterr().err


@pytest.mark.parametrize("content", [b"not gzip at all\n", gzip.compress(TEXT.encode())[:40]])
def test_a_broken_gz_file_is_one_line_naming_it(tmp_path, capsys, content):
    bad = tmp_path / "text.txt.gz"
    bad.write_bytes(content)
    assert main(["train", str(bad), "--out", str(tmp_path / "r"), *TINY]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{bad}: not a readable gzip file" in err


def test_an_output_folder_that_is_a_file_is_refused_before_reading_data(tmp_path, capsys):
    target = tmp_path / "notes.txt"
    target.write_text("keep me")
    assert main(["train", "missing-data-is-never-read", "--out", str(target), *TINY]) == 1
    assert "--out" in capsys.readouterr().err and target.read_text() == "keep me"


def test_a_closed_pipe_ends_generation_quietly(run):
    command = [sys.executable, "-m", "textgen", "generate", str(run), "--max-new-tokens", "5000"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    process.stdout.read(20)
    process.stdout.close()
    err = process.stderr.read().decode()
    assert process.wait() == 0 and "Error" not in err and "Traceback" not in err


def test_an_interrupted_generation_keeps_what_was_generated(run, tmp_path, monkeypatch):
    def interrupted(self, prompt, config):
        yield "one "
        yield "two"
        raise KeyboardInterrupt

    monkeypatch.setattr(Sampler, "stream", interrupted)
    out = tmp_path / "out.txt"
    code = main(["generate", str(run), "--prompt", "the", "--output", str(out)])
    assert code == 130 and out.read_text(encoding="utf-8") == "theone two"


def test_resuming_a_python_run_asks_for_its_text_with_flags(run, tmp_path, capsys):
    (run / "data.json").rename(tmp_path / "data.json")
    try:
        assert main(["train", "--out", str(run), "--resume", "--quiet"]) == 1
    finally:
        (tmp_path / "data.json").rename(run / "data.json")
    err = capsys.readouterr().err
    assert "no data.json" in err and "--val-file or --val-fraction" in err


def test_evaluate_reports_and_warns_about_unknown_words(tmp_path, capsys):
    from textgen import LSTMLanguageModel, ModelConfig, WordTokenizer
    from textgen.checkpoint import save_checkpoint

    tokenizer = WordTokenizer().fit(["the cat sat on the mat\n"])
    model = LSTMLanguageModel(ModelConfig(vocab_size=tokenizer.vocab_size, hidden_size=8))
    checkpoint = save_checkpoint(tmp_path / "word.pt", model=model, tokenizer=tokenizer)
    text = tmp_path / "other.txt"
    text.write_text("a dog ran to the park\n" * 20, encoding="utf-8")
    args = ["evaluate", str(checkpoint), str(text), "--cache-dir", str(tmp_path / "c")]
    assert main(args) == 0
    out, err = capsys.readouterr()
    assert "unk tokens" in out and "<unk>" in err and "too optimistic" in err
