"""``textgen evaluate``, ``info`` and ``plot``: look at a trained model and its run."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from textgen.checkpoint import load_checkpoint
from textgen.data import prepare_corpus
from textgen.data.sources import ENCODING_ERRORS
from textgen.evaluation import evaluate_split, unk_warning
from textgen.plot import plot_metrics
from textgen.run_config import describe_run, format_run_config
from textgen.runtime import describe_device, resolve_device


def add_parsers(commands: Any) -> None:
    p = commands.add_parser(
        "evaluate",
        help="loss, perplexity and bits per character/byte of a model on text files",
        description="Score text files with a model: nats/token, perplexity, bits per char and byte.",
    )
    p.set_defaults(handler=evaluate)
    p.add_argument(
        "checkpoint",
        metavar="RUN_OR_CHECKPOINT_OR_NAME",
        help="a run folder, a .pt file or a pretrained model name",
    )
    p.add_argument("files", nargs="+", metavar="TEXT_FILE", help="text files or folders to score")
    p.add_argument("--batch-size", type=int, default=16, help="parallel streams (default: 16)")
    p.add_argument("--seq-len", type=int, default=256, help="tokens per window (default: 256)")
    p.add_argument(
        "--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)"
    )
    p.add_argument("--cache-dir", help="where encoded token ids are cached (default: ~/.cache)")
    p.add_argument(
        "--encoding-errors",
        choices=ENCODING_ERRORS,
        default="strict",
        help="bytes that are not UTF-8: stop with an error naming the file, or replace them "
        "(default: strict)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")

    p = commands.add_parser(
        "info",
        help="describe a run folder or checkpoint",
        description="Show config, parameter count, vocabulary and progress.",
    )
    p.set_defaults(handler=info)
    p.add_argument(
        "checkpoint",
        metavar="RUN_OR_CHECKPOINT_OR_NAME",
        help="a run folder, a .pt file or a pretrained model name",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--config",
        action="store_true",
        help="print the run configuration (TOML; JSON with --json) that reproduces the run",
    )

    p = commands.add_parser(
        "plot",
        help="draw loss, learning rate and gradient norm of a run as a PNG",
        description="Plot RUN_DIR/metrics.jsonl: loss (bits per char), learning rate and "
        "gradient norm against steps. Needs matplotlib: pip install 'textgen-lstm[plot]'.",
    )
    p.set_defaults(handler=plot)
    p.add_argument("run", metavar="RUN_DIR", help="a run folder, or a metrics.jsonl file")
    p.add_argument("--output", metavar="FILE", help="PNG to write (default: beside metrics.jsonl)")


def evaluate(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    checkpoint = load_checkpoint(args.checkpoint)
    model = checkpoint.build_model(device)
    # The whole text, encoded (and cached) with the model's own tokenizer: no split.
    split = prepare_corpus(
        args.files,
        checkpoint.tokenizer,
        val_fraction=0.0,
        cache_dir=args.cache_dir,
        errors=args.encoding_errors,
    ).train
    if args.device.strip().lower() == "auto":  # say what auto chose, once the inputs are good
        print(describe_device(args.device, device), file=sys.stderr)
    metrics = evaluate_split(
        model,
        split,
        batch_size=args.batch_size,
        seq_len=args.seq_len,
        unk_id=checkpoint.tokenizer.unk_id,
    )
    warning = unk_warning(metrics, "the text")
    if warning:
        print(f"textgen evaluate: warning: {warning}", file=sys.stderr)
    if args.json:
        print(json.dumps(metrics))
        return 0
    print(f"tokens          {metrics['tokens']:,}")
    print(f"loss            {metrics['loss']:.4f} nats/token")
    for name in ("perplexity", "bits_per_token", "bits_per_char", "bits_per_byte"):
        value = metrics[name]
        print(f"{name.replace('_', ' '):<15} {'n/a' if value is None else f'{value:.4f}'}")
    if "unk_tokens" in metrics:
        print(f"unk tokens      {metrics['unk_tokens']:,} ({metrics['unk_share']:.2%})")
    return 0


def info(args: argparse.Namespace) -> int:
    path: str | Path = args.checkpoint  # a string: it may name a pretrained model
    # For a run folder, report the run as it stands now: last.pt has the latest progress.
    if Path(path).is_dir() and (Path(path) / "last.pt").is_file():
        path = Path(path) / "last.pt"
    checkpoint = load_checkpoint(path)
    meta, tokenizer = checkpoint.metadata, checkpoint.tokenizer
    if args.config:
        print(format_run_config(describe_run(checkpoint), as_json=args.json), end="")
        return 0
    best = meta.get("best_val_loss")
    per_process = (meta.get("train_config") or {}).get("batch_size")
    world_size = int(meta.get("world_size") or 1)  # checkpoints before torchrun: one process
    global_batch = meta.get("global_batch_size") or per_process
    details = {
        "path": str(checkpoint.path),
        "model_config": checkpoint.model_config,
        "parameters": checkpoint.build_model().num_parameters(),
        "tokenizer": tokenizer.kind,
        "vocab_size": tokenizer.vocab_size,
        **{key: meta.get(key) for key in ("step", "epoch", "tokens_seen", "best_val_loss")},
        "resumable": checkpoint.train_state is not None,
        "device": meta.get("device"),
        "precision": meta.get("precision"),
        "world_size": world_size,
        "global_batch_size": global_batch,
        "train_config": meta.get("train_config"),
    }
    if args.json:
        print(json.dumps(details))
        return 0
    lines = {
        "checkpoint": details["path"],
        "model": ", ".join(f"{k}={v}" for k, v in checkpoint.model_config.items()),
        "parameters": f"{details['parameters']:,}",
        "tokenizer": f"{tokenizer.kind}, vocabulary {tokenizer.vocab_size}",
        "progress": f"step {details['step']}, epoch {details['epoch']}, "
        f"{details['tokens_seen'] or 0:,} tokens seen",
        "best val loss": "n/a" if best is None else f"{best:.4f} nats/token",
        "trained on": f"{details['device'] or 'n/a'}, {details['precision'] or 'n/a'}, "
        f"{world_size} process{'es' if world_size > 1 else ''}",
        "global batch": _global_batch_text(global_batch, world_size, per_process),
        "resumable": "yes" if details["resumable"] else "no (weights only)",
    }
    for label, text in lines.items():
        print(f"{label:<15} {text}")
    return 0


def _global_batch_text(global_batch: int | None, world_size: int, per_process: int | None) -> str:
    """``8 (2 processes x 4)`` under torchrun, ``4`` for one process."""
    if global_batch is None:
        return "n/a"
    if world_size == 1:
        return str(global_batch)
    return f"{global_batch} ({world_size} processes x {per_process} rows)"


def plot(args: argparse.Namespace) -> int:
    try:
        path = plot_metrics(args.run, args.output)
    except ImportError as error:  # matplotlib missing: one line, not a traceback
        raise ValueError(str(error)) from None
    print(path)
    return 0
