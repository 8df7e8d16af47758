"""CLI errors name the flags a user types, never the library's Python parameters."""

from __future__ import annotations

import pytest

from textgen.cli import build_parser, main
from textgen.cli.flags import flag_message
from textgen.validation import InvalidValueError

build_parser()  # registers every generated flag


@pytest.mark.parametrize(
    ("parameters", "message", "expected"),
    [
        ("unknown", "not in the vocabulary; use unknown='unk'", "use --unknown unk"),
        ("encoding_errors", "use encoding_errors='replace' to", "use --encoding-errors replace to"),
        (("temperature", "greedy"), "temperature must be > 0; use greedy=True", "--greedy"),
        ("bad_words", "bad_words must hold non-empty strings", "--ban must hold"),
    ],
)
def test_parameter_names_become_flags(parameters, message, expected):
    text = flag_message(InvalidValueError(parameters, message))
    assert expected in text
    assert "='" not in text and "=True" not in text


def test_a_bad_utf8_file_names_the_flag(tmp_path, capsys):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"abc\xffdef\n" * 10)
    code = main(["train", str(bad), "--out", str(tmp_path / "run"), "--max-steps", "1"])
    err = capsys.readouterr().err
    assert code == 1 and "--encoding-errors replace" in err and str(bad) in err


def test_every_mention_of_an_underscored_name_becomes_its_flag():
    error = InvalidValueError(
        ("ids", "batch_size", "seq_len"),
        "one batch of batch_size=32 x seq_len=128 needs 4097 (batch_size * seq_len + 1); "
        "lower batch_size or seq_len",
    )
    text = flag_message(error)
    assert "batch_size" not in text and "seq_len" not in text
    assert "--batch-size 32 x --seq-len 128" in text and "lower --batch-size or --seq-len" in text
