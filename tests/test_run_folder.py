"""RunFolder: console messages reach the user exactly once, and the application's logging wins."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from textgen import run_folder
from textgen.run_folder import RunFolder, TqdmHandler, console_messages
from textgen.train_config import TrainConfig


@pytest.fixture
def unconfigured_logging(monkeypatch):
    """As in a script that never configured logging: pytest's own capture handler on the root
    logger is ignored (the subprocess test below checks the real thing)."""
    monkeypatch.setattr(run_folder, "logging_is_configured", lambda: False)


def test_a_warning_is_printed_once_when_logging_is_not_configured(
    tmp_path, unconfigured_logging, capsys
):
    folder = RunFolder(tmp_path / "run", progress=True)
    folder.start(TrainConfig(out_dir=str(tmp_path / "run")), total=10, initial=0, fresh=True)
    folder.warn("gradients look exploding")
    folder.message("step 10: val loss 1.0")
    folder.close()
    err = capsys.readouterr().err
    assert err.count("gradients look exploding") == 1
    assert err.count("step 10: val loss 1.0") == 1
    assert not [h for h in logging.getLogger("textgen").handlers if isinstance(h, TqdmHandler)]


def test_quiet_runs_show_warnings_but_not_validation_lines(tmp_path, unconfigured_logging, capsys):
    folder = RunFolder(tmp_path / "run", progress=False)
    folder.start(TrainConfig(out_dir=str(tmp_path / "run")), total=10, initial=0, fresh=True)
    folder.warn("a warning")
    folder.message("a validation line")
    folder.close()
    err = capsys.readouterr().err
    assert "a warning" in err and "a validation line" not in err


def test_nested_console_blocks_share_one_handler(unconfigured_logging, capsys):
    logger = logging.getLogger("textgen.test")
    with console_messages(logging.WARNING), console_messages(logging.INFO):
        logger.info("inner info")
        logger.warning("inner warning")
    with console_messages(logging.WARNING):
        logger.info("hidden info")
    err = capsys.readouterr().err
    assert err.count("inner info") == 1 and err.count("inner warning") == 1
    assert "hidden info" not in err


def test_configured_logging_receives_the_messages_instead(tmp_path, caplog, capsys):
    caplog.set_level(logging.INFO, logger="textgen")
    folder = RunFolder(tmp_path / "run", progress=True)
    folder.start(TrainConfig(out_dir=str(tmp_path / "run")), total=10, initial=0, fresh=True)
    folder.warn("to the application's handler")
    folder.close()
    assert [r.getMessage() for r in caplog.records] == ["to the application's handler"]
    assert "to the application's handler" not in capsys.readouterr().err


def test_a_folder_holding_a_run_is_refused(tmp_path):
    (tmp_path / "last.pt").write_bytes(b"")
    with pytest.raises(ValueError, match="already holds a run"):
        RunFolder(tmp_path, progress=False).refuse_existing_run()
    RunFolder(tmp_path / "empty", progress=False).refuse_existing_run()  # nothing there: fine


SCRIPT = """
import sys
from textgen.run_folder import RunFolder
from textgen.train_config import TrainConfig
folder = RunFolder(__import__("pathlib").Path(sys.argv[1]), progress=True)
folder.start(TrainConfig(out_dir=sys.argv[1]), total=3, initial=0, fresh=True)
folder.warn("gradients look exploding")
folder.close()
"""


@pytest.mark.slow
def test_in_a_plain_script_a_warning_reaches_stderr_exactly_once(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "run")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stderr.count("gradients look exploding") == 1, done.stderr
