"""Train the pretrained model shipped in the wheel (``textgen generate shakespeare``).

The recipe is textgen's own defaults (`textgen train` on the bundled Shakespeare corpus) plus
the flags given after ``--``, so when the defaults improve, rerunning this script gives the
improved model. The script:

1. runs ``textgen train shakespeare --out RUN --quiet [FLAGS]`` in this process, timing it;
2. scores the run's best.pt on the whole held-out split (the last 5% of the corpus) in float32;
3. stores the weights in bfloat16 (then float16) when that costs at most 0.01 nats/char on the
   same split, else in float32, and refuses a file over 4 MB;
4. writes ``src/textgen/pretrained/NAME.pt`` (weights, tokenizer, metadata; no optimizer state)
   and ``NAME.json``: the command, the machine, the training time and both held-out losses.

Usage (what shipped: see src/textgen/pretrained/shakespeare.json; it is smaller than today's
default model, 2 x 256 with 64-wide embeddings, and trained at the earlier default rate 8e-3,
so remaking it needs those given)::

    python scripts/train_pretrained.py -- --max-time 600 --hidden-size 256 --embed-dim 64 --lr 8e-3
    python scripts/train_pretrained.py --name shakespeare -- --max-time 1800 --hidden-size 384
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path

import torch

from textgen import __version__
from textgen.checkpoint import load_checkpoint, save_checkpoint
from textgen.cli import main as textgen_main
from textgen.data import DataConfig
from textgen.evaluation import evaluate_split

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "src" / "textgen" / "pretrained"
MAX_BYTES = 4 * 1024 * 1024
MAX_LOSS_INCREASE = 0.01  # nats/char a smaller storage dtype may cost


def held_out_loss(model: torch.nn.Module, checkpoint_tokenizer: object) -> float:
    """Loss (nats/char: the tokenizer is char) on the whole validation split of the default
    data settings, scored in float32."""
    corpus = DataConfig().prepare(checkpoint_tokenizer)  # type: ignore[arg-type]
    assert corpus.val is not None
    return float(evaluate_split(model, corpus.val, batch_size=16, seq_len=256)["loss"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", default="shakespeare", help="the model's name (file stem)")
    parser.add_argument("--out-dir", default=str(PACKAGE_DIR), help="where NAME.pt goes")
    parser.add_argument("flags", nargs="*", help="textgen train flags, after --")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        argv = ["train", "shakespeare", "--out", str(run), "--quiet", *args.flags]
        started = time.perf_counter()
        if textgen_main(argv) != 0:
            return 1
        seconds = time.perf_counter() - started
        checkpoint = load_checkpoint(run / "best.pt")
        model = checkpoint.build_model()
        loss32 = held_out_loss(model, checkpoint.tokenizer)
        stored, loss_stored = "float32", loss32
        for dtype in (torch.bfloat16, torch.float16):
            rounded = checkpoint.build_model()
            for parameter in rounded.parameters():  # round through the storage dtype
                parameter.data = parameter.data.to(dtype).float()
            loss = held_out_loss(rounded, checkpoint.tokenizer)
            if loss - loss32 <= MAX_LOSS_INCREASE:
                stored, loss_stored = str(dtype).removeprefix("torch."), loss
                break
        record = {
            "name": args.name,
            "command": "python scripts/train_pretrained.py -- " + shlex.join(args.flags),
            "textgen_train": "textgen " + shlex.join(argv).replace(str(run), "RUN"),
            "textgen_version": __version__,
            "torch_version": str(torch.__version__),  # a TorchVersion is no plain value
            "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, "
            f"{platform.system()}",
            "train_seconds": round(seconds, 1),
            "steps": checkpoint.metadata.get("step"),
            "held_out_loss_float32": round(loss32, 4),
            "held_out_loss": round(loss_stored, 4),
            "held_out": "last 5% of the bundled corpus (textgen's default validation split)",
            "stored_dtype": stored,
            "parameters": model.num_parameters(),
        }
        model = model.to(getattr(torch, stored))
        out = Path(args.out_dir)
        path = save_checkpoint(
            out / f"{args.name}.pt",
            model=model,
            tokenizer=checkpoint.tokenizer,
            metadata={**checkpoint.metadata, "pretrained": record},
        )
        record["bytes"] = path.stat().st_size
        if record["bytes"] > MAX_BYTES:
            path.unlink()
            print(f"{path} would be {record['bytes']} bytes, over 4 MB; not kept", file=sys.stderr)
            return 1
        (out / f"{args.name}.json").write_text(json.dumps(record, indent=2) + "\n", "utf-8")
    print(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
