"""Regenerate the flag lists of docs/cli.md from the command line's own parser.

    python docs/gen_cli.py            # rewrite the generated parts of docs/cli.md
    python docs/gen_cli.py --check    # exit 1 when they are out of date

Each ``## `textgen COMMAND` `` section of docs/cli.md holds a block between
``<!-- flags: COMMAND -->`` and ``<!-- /flags -->``: the command's flags, grouped as in
``--help``, each with its help text and default. The flags and their help come from the config
dataclasses' fields (`textgen.options`), so this page cannot drift from the code; the prose
around the blocks is written by hand. tests/test_docs.py runs the check.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

CLI_PAGE = Path(__file__).resolve().parent / "cli.md"
BLOCK = re.compile(r"(<!-- flags: ([\w-]+) -->\n)(.*?)(<!-- /flags -->)", re.DOTALL)


def subparsers() -> dict[str, argparse.ArgumentParser]:
    """``{"": top-level parser, "train": ..., ...}``."""
    from textgen.cli import build_parser

    parser = build_parser()
    found = {"": parser}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found.update(action.choices)
    return found


def render_flags(parser: argparse.ArgumentParser) -> str:
    """The Markdown list of a parser's flags, one sub-list per argument group."""
    lines: list[str] = []
    for group in parser._action_groups:
        actions = [
            a
            for a in group._group_actions
            if a.option_strings and not isinstance(a, argparse._HelpAction)
        ]
        if not actions:
            continue
        title = group.title or "options"
        if title not in ("options", "optional arguments"):
            lines += ["", f"*{title[0].upper()}{title[1:]}:*", ""]
        for action in actions:
            lines.append(f"- {_usage(action)}: {_help(action)}")
    return "\n".join(lines).strip() + "\n"


def _usage(action: argparse.Action) -> str:
    flags = ", ".join(f"`{o}`" for o in action.option_strings if o.startswith("--"))
    if action.nargs == 0 or isinstance(action, argparse.BooleanOptionalAction):
        return flags
    metavar = action.metavar if isinstance(action.metavar, str) else action.dest.upper()
    if action.nargs == "+":
        metavar += f" [{metavar} ...]"
    first = next(o for o in action.option_strings if o.startswith("--"))
    return f"`{first} {metavar}`"


def _help(action: argparse.Action) -> str:
    text = (action.help or "").replace("%(default)s", str(action.default))
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


def render_page(page: str) -> str:
    """``page`` with every flags block regenerated."""
    parsers = subparsers()

    def replace(match: re.Match[str]) -> str:
        command = "" if match.group(2) == "textgen" else match.group(2)
        if command not in parsers:
            raise SystemExit(f"docs/cli.md names an unknown command {command!r}")
        return match.group(1) + render_flags(parsers[command]) + match.group(4)

    return BLOCK.sub(replace, page)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="only check cli.md is up to date")
    args = parser.parse_args()
    current = CLI_PAGE.read_text(encoding="utf-8")
    text = render_page(current)
    if args.check:
        if text != current:
            print(f"{CLI_PAGE} is out of date; run: python docs/gen_cli.py", file=sys.stderr)
            return 1
        return 0
    CLI_PAGE.write_text(text, encoding="utf-8")
    print(f"wrote {CLI_PAGE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
