"""``textgen explain`` and ``novelty``: look inside a trained model, and at what it writes."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from textgen.checkpoint import load_checkpoint
from textgen.cli.flags import FLAG_NAMES
from textgen.explain import Explanation, explain
from textgen.explain_html import explanation_html
from textgen.novelty import NoveltyIndex, NoveltyReport
from textgen.runtime import resolve_device


def add_parsers(commands: Any) -> None:
    p = commands.add_parser(
        "explain",
        help="per-token surprisal, top alternatives and gradient saliency of a text",
        description="Explain what a model makes of a text: for every token its surprisal "
        "(nats), the model's top-5 alternatives and the saliency of each earlier position (the "
        "gradient norm of the token's log-probability with respect to that input embedding).",
    )
    p.set_defaults(handler=run_explain)
    p.add_argument("checkpoint", metavar="RUN_DIR_OR_FILE", help="a run folder or a .pt file")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--text", help="the text to explain")
    source.add_argument("--file", metavar="FILE", help="read the text from a UTF-8 file")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--html", metavar="OUT", help="write a self-contained HTML page to OUT")
    p.add_argument(
        "--window",
        type=int,
        metavar="K",
        default=256,
        help="saliency covers at most the last K positions before each token; cost grows "
        "with K (default: 256)",
    )
    p.add_argument(
        "--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)"
    )
    FLAG_NAMES.setdefault("window", "--window")  # errors from explain() name the flag

    p = commands.add_parser(
        "novelty",
        help="how much of a text is copied verbatim from a run's training text",
        description="Find the spans of a text that occur verbatim in the run's training text "
        "(exact, with a suffix array built once and kept in the token cache): the longest "
        "one, with its position in both texts, and the share of the text in copied spans of "
        "at least --min-span characters.",
    )
    p.set_defaults(handler=run_novelty)
    p.add_argument("checkpoint", metavar="RUN_DIR", help="a run folder made by textgen train")
    p.add_argument("file", metavar="TEXT_FILE", help="the text to check (UTF-8)")
    p.add_argument(
        "--min-span",
        type=int,
        default=50,
        metavar="N",
        help="the shortest span, in characters, counted as copied (default: 50)",
    )
    p.add_argument("--cache-dir", help="token cache holding the run's data (default: the run's)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    FLAG_NAMES.setdefault("min_span", "--min-span")


def run_explain(args: argparse.Namespace) -> int:
    text = args.text if args.file is None else _read_text(Path(args.file))
    checkpoint = load_checkpoint(args.checkpoint)
    model = checkpoint.build_model(resolve_device(args.device))
    result = explain(model, checkpoint.tokenizer, text, window=args.window)
    if args.html:
        Path(args.html).write_text(explanation_html(result), encoding="utf-8")
    if args.json:
        print(json.dumps(result.to_dict(), ensure_ascii=False))
    elif not args.html:
        _print_explanation(result)
    return 0


def run_novelty(args: argparse.Namespace) -> int:
    text = _read_text(Path(args.file))
    index = NoveltyIndex.for_run(args.checkpoint, cache_dir=args.cache_dir)
    report = index.report(text, min_span=args.min_span)
    if args.json:
        print(json.dumps(report.to_dict(), ensure_ascii=False))
    else:
        _print_novelty(report)
    return 0


def _print_novelty(report: NoveltyReport) -> None:
    print(report.summary())
    for span in report.spans:
        preview = span.text if len(span.text) <= 60 else span.text[:57] + "..."
        print(
            f"  chars {span.text_char}-{span.text_char + span.num_chars} "
            f"(training char {span.train_char}, {span.num_tokens} tokens): {preview!r}"
        )


def _read_text(path: Path) -> str:
    if not path.is_file():
        what = "is not a file" if path.exists() else "does not exist"
        raise FileNotFoundError(f"text file {path} {what}")
    return path.read_text(encoding="utf-8")


def _print_explanation(result: Explanation) -> None:
    """One line per token: surprisal, the top 3 alternatives, the 3 most salient positions."""
    print(f"{'index':>5}  {'token':<8} {'nats':>6}  top alternatives{'':<20} most salient")
    for token in result.tokens:
        surprisal = "" if token.surprisal is None else f"{token.surprisal:6.3f}"
        top = " ".join(f"{name!r}:{p:.2f}" for name, p in token.top[:3])
        first = token.index - len(token.saliency)
        ranked = sorted(enumerate(token.saliency), key=lambda item: -item[1])[:3]
        salient = " ".join(f"{first + k}" for k, _ in ranked)
        print(f"{token.index:>5}  {token.token!r:<8} {surprisal:>6}  {top:<36} {salient}")
    if result.mean_surprisal is not None:
        print(
            f"mean surprisal {result.mean_surprisal:.4f} nats/token, "
            f"{result.bits_per_char:.4f} bits/char"
        )
