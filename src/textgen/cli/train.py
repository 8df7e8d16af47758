"""``textgen train``: flags from `DataConfig`, `ModelConfig` and `TrainConfig`; the run from the
library. Settings come, weakest first, from the dataclasses' defaults, a ``--config`` file, the
run being resumed, and the flags given now."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from textgen.checkpoint import load_checkpoint, run_checkpoints
from textgen.cli.flags import FLAG_NAMES, add_config_flags, given_values
from textgen.data import DataConfig
from textgen.model import LSTMLanguageModel, ModelConfig
from textgen.options import config_from_dict
from textgen.run_config import read_run_config
from textgen.runtime import check_precision, resolve_device, seed_everything
from textgen.train_config import TrainConfig, resume_config
from textgen.trainer import Trainer
from textgen.validation import InvalidValueError

#: Data settings that describe the tokenizer: fixed by the checkpoint of a resumed run.
_TOKENIZER_SETTINGS = ("tokenizer", "vocab_size", "min_freq", "unknown")


def add_parsers(commands: Any) -> None:
    p = commands.add_parser(
        "train",
        help="train a model on text files (default: the bundled Shakespeare corpus)",
        description="Train a model. With no DATA it trains on the bundled Shakespeare corpus. "
        "Flags override a --config file; with --resume, only the flags given change the run.",
    )
    p.set_defaults(handler=run)
    p.add_argument(
        "data",
        nargs="*",
        metavar="DATA",
        help="text files, folders (searched for *.txt) or a bundled corpus name",
    )
    p.add_argument("--config", metavar="FILE", help="a run configuration (.toml or .json)")
    p.add_argument("--resume", action="store_true", help="continue from the run's last.pt exactly")
    add_config_flags(p, DataConfig, section="data", title="data and tokenizer")
    add_config_flags(p, ModelConfig, section="model", exclude=("vocab_size",), title="model")
    add_config_flags(p, TrainConfig, section="train")


def run(args: argparse.Namespace) -> int:
    settings = _settings(args)
    out = Path(settings["train"].get("out_dir", TrainConfig().out_dir))
    if args.resume:
        checkpoint = load_checkpoint(out / "last.pt")
        tokenizer = checkpoint.tokenizer
        data = _resumed_data(out, settings["data"])
        _refuse_shape_changes(settings, checkpoint.model_config, data)
        saved = checkpoint.metadata.get("train_config") or {}
        # The run folder, the progress bar and --overwrite belong to this invocation only.
        now = {"out_dir": str(out), "progress": True, "overwrite": False, **settings["train"]}
        config = resume_config(saved, now)
        model_settings = dict(checkpoint.model_config)
    else:
        config = TrainConfig.from_dict(settings["train"])
        data = DataConfig(**settings["data"])
        ModelConfig(vocab_size=2, **settings["model"])  # check the model flags before any data
        if run_checkpoints(out) and not config.overwrite:
            raise InvalidValueError(
                "out_dir",
                f"{out} already holds a run; pass --resume to continue it, --overwrite to start "
                "afresh, or choose another --out",
            )
        tokenizer = None
    check_precision(config.precision, resolve_device(config.device))  # fail before any data
    corpus = data.prepare(tokenizer)
    if not args.resume:
        model_settings = {**settings["model"], "vocab_size": corpus.tokenizer.vocab_size}
    seed_everything(config.seed)  # the seed decides the initial weights too
    model = LSTMLanguageModel(ModelConfig(**model_settings))
    if config.progress:
        print(
            f"training a {model.config.num_layers}-layer {model.config.cell.upper()} "
            f"({model.num_parameters():,} parameters) on {corpus.train.num_tokens:,} "
            f"{corpus.tokenizer.kind} tokens (vocabulary {corpus.tokenizer.vocab_size}); "
            f"run folder {out}",
            file=sys.stderr,
        )
    trainer = Trainer(model, corpus, config)
    if not args.resume:
        out.mkdir(parents=True, exist_ok=True)
        (out / "data.json").write_text(json.dumps(_plain(data), indent=2) + "\n", "utf-8")
    result = trainer.fit(resume=args.resume)
    summary = f"stopped at step {result.step} ({result.stopped_by})"
    if result.best_val_loss is not None:
        summary += f"; best validation loss {result.best_val_loss:.4f} nats/token"
    print(f"{summary}; checkpoints in {out}", file=sys.stderr)
    return 130 if result.stopped_by == "signal" else 0


def _settings(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Table -> field -> value: the --config file's, overridden by the flags given."""
    settings: dict[str, dict[str, Any]] = {"data": {}, "model": {}, "train": {}}
    if args.config:
        for name, table in read_run_config(args.config).items():
            settings[name].update(table)
    for name, table in settings.items():
        table.update(given_values(args, name))
    if args.data:
        # absolute paths, so a resume from another folder finds the same files
        settings["data"]["sources"] = tuple(
            str(Path(s).resolve()) if Path(s).exists() else s for s in args.data
        )
    return settings


def _refuse_shape_changes(
    settings: dict[str, dict[str, Any]], model: dict[str, Any], data: DataConfig
) -> None:
    """A resumed run's model and tokenizer are in its checkpoint: refuse flags that change them
    (giving the same value again is fine)."""
    changed = [k for k, v in settings["model"].items() if model.get(k) != v]
    changed += [
        k
        for k in _TOKENIZER_SETTINGS
        if k in settings["data"] and settings["data"][k] != getattr(data, k)
    ]
    if changed:
        flags = ", ".join(FLAG_NAMES.get(n, n) for n in changed)
        raise InvalidValueError(
            changed[0],
            f"cannot change {flags} when resuming: the model and tokenizer are those of the "
            "run's last.pt; start a new run (another --out, or --overwrite) to change them",
        )


def _resumed_data(out: Path, given: dict[str, Any]) -> DataConfig:
    """The data of the run being resumed (its ``data.json``), with the data flags given now."""
    path = out / "data.json"
    saved: dict[str, Any] = json.loads(path.read_text("utf-8")) if path.is_file() else {}
    if "val_file" in saved:  # written by textgen 0.1 before DataConfig existed
        saved["val_files"] = saved.pop("val_file")
    if not saved and "sources" not in given:
        raise InvalidValueError(
            "data",
            f"{out} has no data.json saying what text it was trained on (a run made from "
            "Python?); give the same DATA (and --val-file / --val-fraction) again",
        )
    return config_from_dict(DataConfig, {**saved, **given}, source=str(path))


def _plain(data: DataConfig) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in vars(data).items()}
