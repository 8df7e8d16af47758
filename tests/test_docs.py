"""The documentation runs as written and stays in step with the code.

(a) Every fenced code block in README.md and docs/*.md preceded by the marker line
    ``<!-- runnable -->`` runs: python blocks with exec in a fresh namespace, bash blocks command
    by command (``textgen ...`` through `textgen.cli.main`, with tiny settings appended to
    ``train``; ``pip install`` and test-runner lines skipped). Blocks of one page run in order in
    one temporary folder, so a later block may use a run folder an earlier one trained.
(b) docs/cli.md lists exactly the flags that ``--help`` shows for each subcommand, in blocks that
    docs/gen_cli.py generates from the parser.
(c) docs/api.md is what docs/gen_api.py generates.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import shlex
from pathlib import Path

import pytest

from textgen.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = [p for p in [ROOT / "README.md", *sorted(DOCS.glob("*.md"))] if p.is_file()]
MARKER = "<!-- runnable -->"
FENCE = re.compile(r"^(`{3,})\s*([\w+-]*)\s*$")

# Appended to commands from the docs: argparse keeps the last value of a repeated flag.
TINY = {
    "train": [
        *("--max-steps", "3", "--hidden-size", "16", "--embed-dim", "8", "--num-layers", "1"),
        *("--batch-size", "4", "--seq-len", "16", "--eval-every", "3", "--device", "cpu"),
        "--quiet",
    ],
    "generate": ["--max-new-tokens", "20", "--device", "cpu"],
    "evaluate": ["--device", "cpu"],
}
SKIPPED_COMMANDS = ("pip", "pytest", "python -m pytest", "cd", "ruff", "mypy")


def runnable_blocks(page: Path) -> list[tuple[int, str, str]]:
    """(line number, language, code) of each block marked runnable on ``page``."""
    lines = page.read_text(encoding="utf-8").splitlines()
    blocks, marked, i = [], False, 0
    while i < len(lines):
        stripped = lines[i].strip()
        match = FENCE.match(stripped)
        if stripped == MARKER:
            marked = True
        elif match:
            fence, language = match.groups()
            end = i + 1
            while end < len(lines) and lines[end].strip() != fence:
                end += 1
            if marked:
                blocks.append((i + 1, language.lower(), "\n".join(lines[i + 1 : end])))
            marked, i = False, end
        elif stripped:
            marked = False  # the marker must come right before the block (blank lines allowed)
        i += 1
    return blocks


def shell_commands(code: str) -> list[str]:
    """Commands of a bash block: lines joined at trailing backslashes, split at ``&&`` and ``;``,
    comments and prompts (``$ ``) removed."""
    joined = re.sub(r"\\\n", " ", code)
    commands = []
    for line in joined.splitlines():
        line = line.split(" #")[0].strip()
        if line.startswith("#") or not line:
            continue
        line = line.removeprefix("$ ")
        commands += [part.strip() for part in re.split(r"&&|;", line) if part.strip()]
    return commands


def run_shell_block(code: str) -> None:
    for command in shell_commands(code):
        if command.startswith(SKIPPED_COMMANDS):
            continue
        argv = shlex.split(command)
        if argv[0] != "textgen":
            raise AssertionError(
                f"the docs test does not know how to run {command!r}: runnable bash blocks may "
                f"hold only textgen commands and {', '.join(SKIPPED_COMMANDS)} (skipped)"
            )
        argv = argv[1:] + TINY.get(argv[1] if len(argv) > 1 else "", [])
        assert main(argv) == 0, f"`{command}` failed"


RUNNABLE = [(page, block) for page in PAGES for block in runnable_blocks(page)]


def _marks(page: Path) -> list[pytest.MarkDecorator]:
    """Blocks that train a model take a second or more, and later blocks of the page use what
    they trained: every block of such a page is slow (out of the fast inner loop)."""
    codes = [code for _, _, code in runnable_blocks(page)]
    trains = any("textgen train" in code or ".fit(" in code for code in codes)
    return [pytest.mark.slow] if trains else []


@pytest.fixture
def sandbox(tmp_path_factory, monkeypatch):
    """One temporary working folder per page, with a private token cache."""
    monkeypatch.setenv("TEXTGEN_CACHE", str(tmp_path_factory.getbasetemp() / "docs-cache"))
    monkeypatch.setenv("MPLBACKEND", "Agg")

    def enter(page: Path) -> Path:
        folder = tmp_path_factory.getbasetemp() / f"docs-{page.stem}"
        folder.mkdir(exist_ok=True)
        monkeypatch.chdir(folder)
        return folder

    return enter


def test_docs_have_runnable_blocks():
    assert len(RUNNABLE) >= 5, "docs lost their runnable examples"


@pytest.mark.parametrize(
    ("page", "block"),
    [
        pytest.param(page, block, id=f"{page.name}:{block[0]}", marks=_marks(page))
        for page, block in RUNNABLE
    ],
)
def test_runnable_block(page, block, sandbox):
    sandbox(page)
    line, language, code = block
    if language in ("python", "py"):
        exec(compile(code, f"{page.name}:{line}", "exec"), {"__name__": "__docs__"})
    elif language in ("bash", "sh", "shell", "console"):
        run_shell_block(code)
    else:
        raise AssertionError(f"{page.name}:{line}: cannot run a {language or 'plain'} block")


def test_shell_command_parsing():
    code = "pip install -e . && textgen train --out runs/x \\\n  --seed 1\n# note\n$ textgen info runs/x"
    assert shell_commands(code) == [
        "pip install -e .",
        "textgen train --out runs/x    --seed 1",
        "textgen info runs/x",
    ]


# ------------------------------------------------------------------------- (b) CLI reference
def parser_flags() -> dict[str, set[str]]:
    """Option strings per subcommand (``""`` for the top-level parser), without ``-h/--help``."""

    def flags(parser: argparse.ArgumentParser) -> set[str]:
        return {
            option
            for action in parser._actions
            if not isinstance(action, (argparse._HelpAction, argparse._SubParsersAction))
            for option in action.option_strings
        }

    parser = build_parser()
    result = {"": flags(parser)}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, subparser in action.choices.items():
                result[name] = flags(subparser)
    return result


def documented_flags() -> dict[str, set[str]]:
    """Flags written as `--flag` in each ``## `textgen COMMAND` `` section of docs/cli.md."""
    sections: dict[str, set[str]] = {}
    current = None
    for line in (DOCS / "cli.md").read_text(encoding="utf-8").splitlines():
        heading = re.match(r"^## `textgen ?([\w-]*)`", line)
        if heading:
            current = heading.group(1)
            sections[current] = set()
        elif line.startswith("## "):
            current = None
        elif current is not None:
            sections[current] |= set(re.findall(r"`(--[\w-]+)", line)) - {"--help"}
    return sections


def test_cli_reference_lists_exactly_the_flags_of_help():
    actual, documented = parser_flags(), documented_flags()
    assert set(documented) == set(actual), "docs/cli.md needs one section per subcommand"
    for command, flags in actual.items():
        name = f"textgen {command}".strip()
        missing = flags - documented[command]
        extra = documented[command] - flags
        assert not missing, f"docs/cli.md, {name}: undocumented flags {sorted(missing)}"
        assert not extra, f"docs/cli.md, {name}: flags that --help lacks {sorted(extra)}"


# ------------------------------------------------------------------------ (c) API reference
def test_api_reference_is_up_to_date():
    spec = importlib.util.spec_from_file_location("gen_api", DOCS / "gen_api.py")
    assert spec is not None and spec.loader is not None
    gen_api = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen_api)
    assert (DOCS / "api.md").read_text(encoding="utf-8") == gen_api.render(), (
        "docs/api.md is out of date: run `python docs/gen_api.py`"
    )


def test_cli_reference_flag_lists_are_current():
    spec = importlib.util.spec_from_file_location("gen_cli", DOCS / "gen_cli.py")
    assert spec is not None and spec.loader is not None
    gen_cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen_cli)
    page = (DOCS / "cli.md").read_text(encoding="utf-8")
    commands = len(gen_cli.subparsers())  # the subcommands and the top-level parser
    assert page.count("<!-- flags: ") == commands, "docs/cli.md needs a flags block per command"
    assert page == gen_cli.render_page(page), (
        "docs/cli.md is out of date: run `python docs/gen_cli.py`"
    )


def test_every_train_flag_shows_its_default_in_help():
    """Each TrainConfig field has a flag whose help states the dataclass default."""
    from textgen.options import describe
    from textgen.train_config import TrainConfig

    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    actions = {o: a for a in subparsers.choices["train"]._actions for o in a.option_strings}
    for info in describe(TrainConfig):
        action = actions[info.cli_flag]
        if info.annotation == "bool" and info.flag:  # --quiet switches progress off
            continue
        shown = "none" if info.default is None else str(info.default)
        assert f"(default: {shown})" in action.help, info.name
