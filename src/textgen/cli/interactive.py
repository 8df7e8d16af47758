"""``textgen generate RUN --interactive``: load the model once, then answer prompts from stdin.

Each line read is a prompt (an empty line starts from nothing: with a documents model, a new
item); its continuation streams to stdout, followed by a newline. A line starting with ``:``
changes a sampling setting for the prompts after it, with the same names and values as the
``textgen generate`` flags (``:temperature 0.7``, ``:top-p 0.9``, ``:max-new-tokens 100``,
``:greedy``, ``:seed none``); ``:settings`` shows them, ``:help`` lists the commands and
``:quit`` (or end of input, Ctrl-D) ends the session. On a terminal the prompt is read with
line editing and history (`readline`, where Python has it).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import shlex
import sys
from collections.abc import Iterator
from typing import Any, NoReturn, TextIO

from textgen.cli.flags import add_config_flags, flag_message, given_values
from textgen.sampler import SampleConfig, Sampler

PROMPT = ">>> "
HELP = (
    "type a prompt and press Enter (an empty line starts from nothing); "
    ":NAME VALUE changes a setting (:temperature 0.7, :top-p 0.9, :max-new-tokens 100, "
    ":greedy, :seed none); :settings shows them; :quit or Ctrl-D ends"
)


class _SettingsParser(argparse.ArgumentParser):
    """The `SampleConfig` flags, raising instead of exiting on a bad command."""

    def error(self, message: str) -> NoReturn:
        raise ValueError(message)


def _settings_parser() -> _SettingsParser:
    parser = _SettingsParser(prog=":", add_help=False)
    add_config_flags(parser, SampleConfig, section="sample", exclude=("return_logprobs",))
    return parser


def apply_command(
    config: SampleConfig, command: str, parser: argparse.ArgumentParser
) -> SampleConfig:
    """The settings after one ``:name value`` command (``name`` as a flag, without ``--``;
    ``none`` clears an optional setting).

    Raises:
        ValueError: an unknown setting or a bad value (the message names it).
    """
    words = shlex.split(command)
    if not words:
        raise ValueError("empty command; try :help")
    name = words[0].replace("_", "-")
    values = words[1:]
    if len(values) == 1 and values[0].lower() == "none":
        field = name.replace("-", "_")
        if field not in {f.name for f in dataclasses.fields(SampleConfig)}:
            raise ValueError(f"unknown setting {words[0]!r}; try :help")
        return dataclasses.replace(config, **{field: None})  # type: ignore[arg-type]
    given = given_values(parser.parse_args([f"--{name}", *values]), "sample")
    return dataclasses.replace(config, **given)


def _lines(stdin: TextIO, stderr: TextIO) -> Iterator[str]:
    """Prompts from ``stdin``: with ``input()`` and readline on a terminal, else line by line."""
    if stdin.isatty():
        with contextlib.suppress(ImportError):  # Python built without readline: plain input
            import readline  # noqa: F401  (line editing and history for input())
        print(HELP, file=stderr)
        while True:
            try:
                yield input(PROMPT)
            except EOFError:
                print(file=stderr)
                return
    for line in stdin:
        yield line.removesuffix("\n").removesuffix("\r")


def interact(
    sampler: Sampler,
    config: SampleConfig,
    *,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Answer prompts from ``stdin`` until end of input or ``:quit``; returns the exit code (0).

    Errors in a prompt or a command (an unknown character, a bad value) are reported on
    ``stderr`` as one line and the session goes on. The streams default to ``sys``'s.
    """
    stdin = sys.stdin if stdin is None else stdin
    stdout = sys.stdout if stdout is None else stdout
    stderr = sys.stderr if stderr is None else stderr
    parser = _settings_parser()
    for line in _lines(stdin, stderr):
        if line.startswith(":"):
            command = line[1:].strip()
            if command in ("quit", "q", "exit"):
                break
            if command == "help":
                print(HELP, file=stderr)
                continue
            if command == "settings":
                shown = {
                    k: v for k, v in dataclasses.asdict(config).items() if k != "return_logprobs"
                }
                print(shown, file=stderr)
                continue
            try:
                config = apply_command(config, command, parser)
            except (ValueError, TypeError) as error:
                print(f"error: {flag_message(error)}", file=stderr)
            continue
        try:
            _answer(sampler, line, config, stdout)
        except (ValueError, TypeError) as error:
            print(f"error: {flag_message(error)}", file=stderr)
    return 0


def _answer(sampler: Sampler, prompt: str, config: SampleConfig, stdout: TextIO) -> None:
    """Stream one continuation (several samples, or beams, are printed one per line)."""
    if config.num_samples == 1 and config.num_beams == 1:
        pieces: Any = sampler.stream(prompt, config)
        for piece in pieces:
            stdout.write(piece)
            stdout.flush()
        stdout.write("\n")
    else:
        for sample in sampler.generate(prompt, config):
            stdout.write(sample.text + "\n")
    stdout.flush()


__all__ = ["HELP", "apply_command", "interact"]
