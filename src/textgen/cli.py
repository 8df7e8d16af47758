"""The ``textgen`` command line (argparse front end). Subcommands arrive with the Trainer."""

from __future__ import annotations

import argparse
import sys

from textgen import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="textgen", description=__doc__)
    parser.add_argument("--version", action="version", version=f"textgen {__version__}")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    parser.parse_args(sys.argv[1:] if argv is None else argv)
    parser.print_help()
    return 0
