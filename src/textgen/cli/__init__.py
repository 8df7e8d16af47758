"""The ``textgen`` command line: a thin front end over the library.

Each command is a module (`train`, `generate`, `inspect` for ``evaluate``/``info``/``plot``,
`inside` for ``explain``/``novelty``, `export`) with an ``add_parser`` that declares its flags —
most generated from the config dataclasses by `textgen.cli.flags` — and a ``run`` that calls the
library. Errors in what the user gave (a
missing file, a bad value, an unreadable checkpoint) become one line on stderr, naming the flag,
and a non-zero exit; real bugs keep their tracebacks.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from textgen import __version__
from textgen.atomic import StorageError
from textgen.checkpoint import CheckpointError
from textgen.cli import export, generate, inside, inspect, train
from textgen.cli.flags import flag_message
from textgen.health import TrainingDivergedError
from textgen.lockfile import RunFolderBusyError
from textgen.run_folder import console_messages
from textgen.validation import InvalidTypeError

EXIT_USER_ERROR = 1
EXIT_INTERRUPTED = 130
_USER_ERRORS = (
    ValueError,
    InvalidTypeError,
    FileNotFoundError,
    IsADirectoryError,
    PermissionError,
    CheckpointError,
    TrainingDivergedError,
    RunFolderBusyError,
    StorageError,
)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``textgen`` script and ``python -m textgen``; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    if not getattr(args, "command", None):
        parser.print_help()
        return EXIT_USER_ERROR
    try:
        with console_messages(logging.WARNING):  # the library's warnings, once, above any bar
            return int(args.handler(args))
    except KeyboardInterrupt:
        print("textgen: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `textgen generate ... | head`: the reader has all it wants
        _silence_stdout()
        return 0
    except _USER_ERRORS as error:
        print(f"textgen {args.command}{_which_process()}: error: {flag_message(error)}",
              file=sys.stderr)  # fmt: skip
        return EXIT_USER_ERROR


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's final flush into the closed pipe does
    not print a second BrokenPipeError (the recipe of Python's signal module docs)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no real stdout (captured by a test): nothing to silence
        pass


def _which_process() -> str:
    """`` (rank N)`` under torchrun, so the error lines of several processes can be told apart."""
    if os.environ.get("WORLD_SIZE", "1") not in ("", "0", "1"):
        return f" (rank {os.environ.get('RANK', '?')})"
    return ""


def build_parser() -> argparse.ArgumentParser:
    """The full parser (also used by the docs test that checks the CLI reference)."""
    parser = argparse.ArgumentParser(
        prog="textgen", description="Train and sample recurrent text-generation models."
    )
    parser.add_argument("--version", action="version", version=f"textgen {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in (train, generate, inspect, inside, export):
        module.add_parsers(commands)
    return parser


__all__ = ["EXIT_INTERRUPTED", "EXIT_USER_ERROR", "build_parser", "main"]
