"""Command-line flags generated from the config dataclasses' fields (see `textgen.options`).

``hidden_size`` becomes ``--hidden-size`` with the field's help text, default and choices, so a
new config field is a new flag with no edit here. Every generated flag defaults to
``argparse.SUPPRESS``: after parsing, the namespace holds exactly the flags the user gave,
which is how a resumed run or a ``--config`` file knows what the command line changes.
Values that name no number (``none``, or ``all`` where it reads better: ``--eval-batches all``)
turn optional fields off.
"""

from __future__ import annotations

import argparse
import functools
import re
from collections.abc import Callable, Iterable
from typing import Any

from textgen.options import OptionInfo, describe

#: Every generated flag: destination -> flag, to turn a parameter name into the flag in errors.
FLAG_NAMES: dict[str, str] = {}


def add_config_flags(
    parser: argparse.ArgumentParser,
    config_class: type,
    *,
    section: str,
    exclude: Iterable[str] = (),
    title: str | None = None,
) -> None:
    """Add a flag for every field of ``config_class`` (but ``exclude``) to ``parser``.

    Fields with a ``group`` go under that heading; the others under ``title`` (default: the
    section). Each flag's destination is ``"<section>.<field>"``, read back by `given_values`.
    """
    groups: dict[str, Any] = {}
    skipped = set(exclude)
    for info in describe(config_class):
        flag = info.cli_flag
        if info.name in skipped or flag is None:
            continue
        heading = info.group or title or section
        if heading not in groups:
            groups[heading] = parser.add_argument_group(heading)
        groups[heading].add_argument(flag, dest=f"{section}.{info.name}", **_argument(info, flag))
        FLAG_NAMES.setdefault(info.name, flag)


def given_values(args: argparse.Namespace, section: str) -> dict[str, Any]:
    """The fields of ``section`` given on the command line: field name -> value."""
    prefix = section + "."
    return {k[len(prefix) :]: v for k, v in vars(args).items() if k.startswith(prefix)}


def flag_message(error: BaseException) -> str:
    """The error's message, with the parameters it names written as command-line flags.

    ``unknown='unk'`` becomes ``--unknown unk`` (each such assignment); a bare name with an
    underscore becomes its flag everywhere, a plain-word name at its first mention only.
    """
    text = str(error)
    for parameter in getattr(error, "parameters", ()):
        flag = FLAG_NAMES.get(parameter)
        if flag is None:
            continue
        name = rf"(?<![\w-]){re.escape(parameter)}"
        assigned = re.compile(rf"{name}=(?:'([^']*)'|\"([^\"]*)\"|([^\s,;)]+))")
        text, count = assigned.subn(functools.partial(_flag_with_value, flag), text)
        # A name like batch_size is never English: every mention is the setting. A plain word
        # (unknown, sources) is the setting at its first mention only, and only if unassigned.
        if "_" in parameter or not count:
            text = re.sub(rf"{name}(?![\w=])", flag, text, count=0 if "_" in parameter else 1)
    return text


def _flag_with_value(flag: str, match: re.Match[str]) -> str:
    """``--flag value`` for ``name=value``; switches are written as they are typed."""
    value = next(group for group in match.groups() if group is not None)
    if value in ("True", "False"):
        return flag if value == "True" else f"--no-{flag[2:]}"
    return f"{flag} {value}"


def _argument(info: OptionInfo, flag: str) -> dict[str, Any]:
    """The ``add_argument`` keywords of one field."""
    annotation = info.annotation.replace(" ", "")
    # A help text that explains its own default (None meaning "the tokenizer's") keeps it.
    shown = "" if "default" in info.help else f" (default: {_shown(info.default)})"
    help_text = info.help + shown
    options: dict[str, Any] = {"default": argparse.SUPPRESS, "help": help_text}
    if annotation == "bool":
        if info.flag and info.default is True:  # e.g. progress <-> --quiet switches it off
            return {**options, "action": "store_const", "const": False, "help": info.help}
        return {**options, "action": argparse.BooleanOptionalAction}
    if annotation.startswith("tuple[str"):
        return {**options, "action": "extend", "nargs": "+", "metavar": "TEXT"}
    optional = annotation.endswith("|None")
    base = annotation.removesuffix("|None")
    converter: Callable[[str], Any] = {"int": int, "float": float}.get(base, str)
    options["type"] = _none_or(converter) if optional else converter
    if info.choices:
        options["choices"] = (*info.choices, None) if optional else info.choices
        options["metavar"] = "{" + ",".join(info.choices) + "}"
    else:
        options["metavar"] = {"int": "N", "float": "X"}.get(base, flag.lstrip("-").upper())
    return options


def _none_or(converter: Callable[[str], Any]) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        return None if text.strip().lower() in ("none", "all") else converter(text)

    convert.__name__ = getattr(converter, "__name__", "value")  # argparse names it in errors
    return convert


def _shown(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, tuple):
        return " ".join(value) if value else "none"
    return str(value)
