"""``textgen export``: a run's model as ONNX or TorchScript, with its tokenizer as JSON."""

from __future__ import annotations

import argparse
from typing import Any

from textgen.checkpoint import load_checkpoint
from textgen.export import FORMATS, export_model, state_names, tokenizer_path


def add_parsers(commands: Any) -> None:
    p = commands.add_parser(
        "export",
        help="export a model as ONNX or TorchScript, for serving without textgen",
        description="Export the model of a run folder (its best.pt) or checkpoint file as the "
        "function (ids, state) -> (logits, state), with dynamic batch and time axes; the "
        "tokenizer is written beside it as FILE_STEM.tokenizer.json. ONNX needs the onnx "
        "package: pip install 'textgen-lstm[export]'.",
    )
    p.set_defaults(handler=run)
    p.add_argument("checkpoint", metavar="RUN_DIR_OR_FILE", help="a run folder or a .pt file")
    p.add_argument("--format", choices=FORMATS, default="onnx", help="file format (default: onnx)")
    p.add_argument("--out", metavar="FILE", required=True, help="the file to write")


def run(args: argparse.Namespace) -> int:
    checkpoint = load_checkpoint(args.checkpoint)
    model = checkpoint.build_model()
    try:
        path = export_model(model, args.out, format=args.format, tokenizer=checkpoint.tokenizer)
    except ImportError as error:  # onnx missing: one line, not a traceback
        raise ValueError(str(error)) from None
    names = ", ".join(state_names(model))
    print(f"{path}  ({args.format}; inputs ids, {names}; outputs logits, new {names})")
    print(tokenizer_path(path))
    return 0
