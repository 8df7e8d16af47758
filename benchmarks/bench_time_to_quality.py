"""Time to quality: held-out loss against wall time for several recipes, one after another in one
run on one machine (run by hand; each recipe gets the machine alone).

The data is the bundled Shakespeare split 90/5/5 by lines (train / valid / test, as
shared/bench/make_wlm_data.py does); every recipe trains on the 90% and validates on the whole
5% of held-out lines (nats per character). Each recipe runs in a fresh process, so its wall
time includes start-up (imports, reading and encoding the text); the clock starts just before
the process is launched.

Recipes (all textgen; model and optimizer flags as named):

* ``default``: `textgen train` with no model or optimizer flags (its own time budget);
* ``wlm-sgd``: word_language_model's recipe: 2x256 LSTM, embed 256, dropout 0.2, batch 32 x
  100, SGD lr 20, clip 0.25, rate divided by 4 when validation stops improving;
* ``wlm-adamw``: the same with AdamW at lr 2e-3 (word_language_model's --use-optimizer);
* ``textgen-same-model``: textgen's recipe (its optimizer, schedule and dropout) on
  word_language_model's model and batch, as `textgen train --embed-dim 256 --hidden-size 256
  --seq-len 100 --batch-size 32` runs it (for the side-by-side with the real example:
  shared/bench/README.md runs it on the same split);
* ``textgen-same-model-d0.2``: the same with word_language_model's dropout of 0.2.

    python benchmarks/bench_time_to_quality.py --budget 300
    python benchmarks/bench_time_to_quality.py --recipes default --runs 3
    python benchmarks/bench_time_to_quality.py --budget 90 \
        --try '{"name": "no-dropout", "model": {"dropout": 0}, "train": {}}'

``--try`` adds a variant of the default recipe (settings on top of textgen's defaults), which is
how the default recipe was searched (docs/performance.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
TARGETS = (1.60, 1.50, 1.46, 1.40)

WLM_SHAPE = {"embed_dim": 256, "hidden_size": 256, "num_layers": 2}
WLM_MODEL = {**WLM_SHAPE, "dropout": 0.2}
WLM_BATCH = {"batch_size": 32, "seq_len": 100}
RECIPES: dict[str, dict[str, dict]] = {
    "default": {"model": {}, "train": {}},
    "wlm-sgd": {
        "model": WLM_MODEL,
        "train": {
            **WLM_BATCH,
            "optimizer": "sgd",
            "lr": 20.0,
            "momentum": 0.0,
            "weight_decay": 0.0,
            "clip_norm": 0.25,
            "schedule": "plateau",
            "warmup_steps": 0,
            "min_lr_ratio": 0.0,
        },
    },
    "wlm-adamw": {
        "model": WLM_MODEL,
        "train": {
            **WLM_BATCH,
            "optimizer": "adamw",
            "lr": 2e-3,
            "weight_decay": 0.0,
            "clip_norm": 0.25,
            "schedule": "plateau",
            "warmup_steps": 0,
            "min_lr_ratio": 0.0,
        },
    },
    "textgen-same-model": {"model": WLM_SHAPE, "train": dict(WLM_BATCH)},
    "textgen-same-model-d0.2": {"model": WLM_MODEL, "train": dict(WLM_BATCH)},
}

CHILD = """
import json, sys, time
from textgen import Callback, build_trainer, plan_run
settings, log = json.loads(sys.argv[1]), sys.argv[2]

class Record(Callback):
    def on_evaluate_end(self, trainer, metrics):
        with open(log, "a") as handle:
            handle.write(json.dumps({"wall": time.time(), "step": metrics["step"],
                                     "val_loss": metrics["val_loss"],
                                     "val_scope": metrics.get("val_scope")}) + "\\n")

trainer = build_trainer(plan_run(settings), callbacks=[Record()])
trainer.fit()
"""


def split_by_lines(folder: Path) -> tuple[Path, Path]:
    """train.txt (first 90% of lines) and valid.txt (next 5%) of the bundled corpus."""
    from textgen import load_corpus

    lines = load_corpus("shakespeare").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    n_train, n_valid = int(len(lines) * 0.90), int(len(lines) * 0.05)
    train, valid = folder / "train.txt", folder / "valid.txt"
    train.write_text("\n".join(lines[:n_train]) + "\n", encoding="utf-8")
    valid.write_text("\n".join(lines[n_train : n_train + n_valid]) + "\n", encoding="utf-8")
    return train, valid


def run_recipe(name: str, budget: float | None, train: Path, valid: Path, work: Path) -> dict:
    recipe = RECIPES[name]
    out = work / f"run-{name}-{time.time_ns()}"
    train_settings = {"out_dir": str(out), "progress": False, **recipe["train"]}
    if budget is not None:
        train_settings["max_time"] = budget
    settings = {
        "data": {"sources": [str(train)], "val_files": [str(valid)], "cache_dir": str(work)},
        "model": recipe["model"],
        "train": train_settings,
    }
    log = work / f"{out.name}.jsonl"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    launched = time.time()
    subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(settings), str(log)], env=env, check=True
    )
    wall = time.time() - launched
    records = [json.loads(line) for line in log.read_text().splitlines()]
    curve = [(r["wall"] - launched, r["step"], r["val_loss"]) for r in records]
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    speeds = [m["tokens_per_s"] for m in metrics if "tokens_per_s" in m]
    precision = next((m["precision"] for m in metrics if "precision" in m), "?")
    return {
        "name": name,
        "wall": wall,
        "curve": curve,
        "scopes": {r["val_scope"] for r in records},
        "tokens_per_s": statistics.median(speeds) if speeds else float("nan"),
        "precision": precision,
    }


def time_to(curve: list[tuple[float, int, float]], target: float) -> float | None:
    return next((seconds for seconds, _, loss in curve if loss < target), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", nargs="*", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument(
        "--try", dest="variants", action="append", default=[], metavar="JSON",
        help='a variant: {"name": ..., "model": {...}, "train": {...}} (repeatable)',
    )  # fmt: skip
    parser.add_argument(
        "--budget", type=float, default=None, help="seconds of training per recipe (default: "
        "the default recipe's own budget, and 300 for the others; 0: none, for variants that "
        "set max_steps, whose results do not depend on the machine's speed)"
    )  # fmt: skip
    parser.add_argument("--runs", type=int, default=1, help="runs per recipe")
    parser.add_argument("--work", default=None, help="folder for runs (default: a temporary one)")
    args = parser.parse_args()

    work = Path(args.work or tempfile.mkdtemp(prefix="textgen-ttq-"))
    work.mkdir(parents=True, exist_ok=True)
    train, valid = split_by_lines(work)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    print(f"data: bundled corpus split 90/5 by lines; valid = {valid.stat().st_size:,} bytes")
    header = "recipe               wall s   steps  final  tokens/s  prec  " + "  ".join(
        f"t<{t:.2f}" for t in TARGETS
    )
    print(header)
    for variant in args.variants:
        recipe = json.loads(variant)
        RECIPES[recipe["name"]] = {
            "model": recipe.get("model", {}),
            "train": recipe.get("train", {}),
        }
    for name in [*args.recipes, *(json.loads(v)["name"] for v in args.variants)]:
        for _ in range(args.runs):
            budget = (
                args.budget if args.budget is not None else (None if name == "default" else 300.0)
            )
            result = run_recipe(name, budget or None, train, valid, work)
            curve = result["curve"]
            final = curve[-1]
            times = "  ".join(
                f"{t:6.0f}" if (t := time_to(curve, target)) is not None else "     -"
                for target in TARGETS
            )
            print(
                f"{name:20s} {result['wall']:7.0f} {final[1]:7d} {final[2]:6.3f} "
                f"{result['tokens_per_s']:9,.0f}  {result['precision']:4s}  {times}"
            )
            print("  curve (s, step, val loss): " + ", ".join(
                f"({s:.0f}, {step}, {loss:.3f})" for s, step, loss in curve
            ))  # fmt: skip


if __name__ == "__main__":
    main()
