"""``textgen train``: flags from `DataConfig`, `ModelConfig` and `TrainConfig`; the run from
`textgen.runs`. Settings come, weakest first, from the dataclasses' defaults, a ``--config``
file, the run being resumed, and the flags given now."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from textgen import distributed
from textgen.cli.flags import add_config_flags, given_values
from textgen.data import DataConfig
from textgen.model import ModelConfig
from textgen.run_config import read_run_config
from textgen.runs import RunPlan, build_trainer, plan_run
from textgen.runtime import describe_device
from textgen.train_config import TrainConfig


def add_parsers(commands: Any) -> None:
    p = commands.add_parser(
        "train",
        help="train a model on text files (default: the bundled Shakespeare corpus)",
        description="Train a model. With no DATA it trains on the bundled Shakespeare corpus. "
        "Flags override a --config file; with --resume, only the flags given change the run.",
    )
    p.set_defaults(handler=run)
    p.add_argument(
        "data", nargs="*", metavar="DATA", help="text files, folders or a bundled corpus name"
    )
    p.add_argument("--config", metavar="FILE", help="a run configuration (.toml or .json)")
    p.add_argument("--resume", action="store_true", help="continue from the run's last.pt exactly")
    p.add_argument(
        "--init-from",
        metavar="RUN_OR_CHECKPOINT_OR_NAME",
        help="fine-tune: start a new run from this trained model (a run folder, a .pt file or "
        "a pretrained name such as 'shakespeare'); it is only read",
    )
    add_config_flags(p, DataConfig, section="data", title="data and tokenizer")
    add_config_flags(p, ModelConfig, section="model", exclude=("vocab_size",), title="model")
    add_config_flags(p, TrainConfig, section="train", exclude=("tensorboard",))
    # --tensorboard alone means OUT_DIR/tensorboard, so it takes an optional value.
    p.add_argument(
        "--tensorboard",
        nargs="?",
        const="",
        default=argparse.SUPPRESS,
        dest="train.tensorboard",
        metavar="DIR",
        help="write TensorBoard curves and samples to DIR (alone: OUT_DIR/tensorboard; needs "
        "pip install 'textgen-lstm[tensorboard]') (default: none)",
    )


def run(args: argparse.Namespace) -> int:
    settings: dict[str, dict[str, Any]] = {"data": {}, "model": {}, "train": {}}
    if args.config:
        for name, table in read_run_config(args.config).items():
            settings[name].update(table)
    for name, table in settings.items():
        table.update(given_values(args, name))
    if args.data:  # absolute paths, so a resume from another folder finds the same files
        settings["data"]["sources"] = tuple(
            str(Path(s).resolve()) if Path(s).exists() else s for s in args.data
        )
    # every check before any data is read
    plan = plan_run(settings, resume=args.resume, init_from=args.init_from)
    try:
        return _train(plan)
    finally:
        distributed.shutdown()  # under torchrun, also when building the run failed


def _train(plan: RunPlan) -> int:
    try:
        trainer = build_trainer(plan)
    except ImportError as error:  # an optional package (tensorboard) missing: one line
        raise ValueError(str(error)) from None
    model, corpus, out = trainer.model, trainer.corpus, plan.train.out_dir
    main = trainer.rank == 0  # under torchrun, rank 0 speaks for every process
    if plan.source is not None and main:
        new_ids = range(plan.source.tokenizer.vocab_size, corpus.tokenizer.vocab_size)
        added = [corpus.tokenizer.decode([i]) for i in new_ids]
        shown = ", ".join(map(repr, added[:20])) + (", ..." if len(added) > 20 else "")
        print(
            f"fine-tuning {plan.source.path}: "
            + (f"added {len(added)} new symbol(s) to the vocabulary: {shown}" if added else
               "every symbol of the new text is in its vocabulary"),
            file=sys.stderr,
        )  # fmt: skip
    if plan.train.progress and main:
        device = describe_device(plan.train.device, trainer.device).removeprefix("device: ")
        processes = ""
        if trainer.world_size > 1:
            processes = (
                f" x {trainer.world_size} processes (global batch "
                f"{plan.train.batch_size * trainer.world_size})"
            )
        print(
            f"training a {model.config.num_layers}-layer {model.config.cell.upper()} "
            f"({model.num_parameters():,} parameters) on {corpus.train.num_tokens:,} "
            f"{corpus.tokenizer.kind} tokens (vocabulary {corpus.tokenizer.vocab_size}) on "
            f"{device}{processes} in {trainer.precision}; run folder {out}",
            file=sys.stderr,
        )
    result = trainer.fit(resume=plan.resume)
    summary = f"stopped at step {result.step} ({result.stopped_by})"
    if result.best_val_loss is not None:
        summary += f"; best validation loss {result.best_val_loss:.4f} nats/token"
    if main:
        print(f"{summary}; checkpoints in {out}", file=sys.stderr)
    return 130 if result.stopped_by == "signal" else 0
