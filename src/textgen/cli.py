"""The ``textgen`` command line: ``train``, ``generate``, ``evaluate`` and ``info``.

A thin argparse front end: every flag maps one-to-one onto a field of `ModelConfig`,
`TrainConfig` or `SampleConfig` (``--hidden-size`` <-> ``hidden_size``). Errors in what the user
gave (a missing file, a bad value, an unreadable checkpoint) become one line on stderr and a
non-zero exit; real bugs keep their tracebacks.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from textgen import __version__
from textgen.model import ModelConfig
from textgen.sampler import SampleConfig
from textgen.trainer import TrainConfig

EXIT_USER_ERROR = 1
EXIT_INTERRUPTED = 130


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``textgen`` script and ``python -m textgen``; returns the exit code."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return EXIT_USER_ERROR
    args.explicit = _explicit_flags(argv)
    from textgen.checkpoint import CheckpointError
    from textgen.trainer import TrainingDivergedError

    try:
        return int(args.handler(args))
    except KeyboardInterrupt:
        print("textgen: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (
        ValueError,
        FileNotFoundError,
        IsADirectoryError,
        PermissionError,
        CheckpointError,
        TrainingDivergedError,
    ) as error:
        print(f"textgen {args.command}: error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR


def build_parser() -> argparse.ArgumentParser:
    """The full parser (also used by the docs test that checks the CLI reference)."""
    parser = argparse.ArgumentParser(
        prog="textgen",
        description="Train and sample recurrent text-generation models.",
    )
    parser.add_argument("--version", action="version", version=f"textgen {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_train(commands)
    _add_generate(commands)
    _add_evaluate(commands)
    _add_info(commands)
    _add_plot(commands)
    return parser


# ---------------------------------------------------------------------------------- train
def _add_train(commands: Any) -> None:
    p = commands.add_parser(
        "train",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        help="train a model on text files (default: the bundled Shakespeare corpus)",
        description="Train a model. With no DATA it trains on the bundled Shakespeare corpus.",
    )
    p.set_defaults(handler=_train)
    p.add_argument(
        "data",
        nargs="*",
        metavar="DATA",
        help="text files, folders (searched for *.txt) or a bundled corpus name",
    )
    p.add_argument(
        "--out",
        default=_default(TrainConfig, "out_dir"),
        metavar="DIR",
        help="run folder for best.pt, last.pt and metrics.jsonl",
    )
    g = p.add_argument_group("data and tokenizer")
    g.add_argument(
        "--tokenizer",
        choices=("char", "word", "bpe"),
        default="char",
        help="char: Unicode characters; word: words and punctuation; bpe: trainable byte-level BPE",
    )
    g.add_argument(
        "--vocab-size",
        type=int,
        default=2048,
        help="target vocabulary size for --tokenizer bpe",
    )
    g.add_argument(
        "--min-freq",
        type=int,
        default=1,
        help="minimum count for a word (word) or a merge (bpe)",
    )
    g.add_argument(
        "--unknown",
        choices=("error", "unk"),
        default="error",
        help="characters outside a char vocabulary: a clear error, or an <unk> token ",
    )
    g.add_argument(
        "--val-fraction",
        type=float,
        default=0.05,
        help="fraction of the text, from its end, kept for validation",
    )
    g.add_argument(
        "--val-file",
        nargs="+",
        default=None,
        metavar="FILE",
        help="explicit validation file(s) instead of --val-fraction",
    )
    g.add_argument(
        "--encoding-errors",
        choices=("strict", "replace"),
        default="strict",
        help="what to do with bytes that are not UTF-8",
    )
    g.add_argument(
        "--cache-dir",
        default=None,
        help="where encoded token ids are cached (default: $TEXTGEN_CACHE or ~/.cache/textgen)",
    )
    g.add_argument(
        "--batching",
        choices=("stream", "random"),
        default="stream",
        help="contiguous streams with carried state, or shuffled windows",
    )
    m = p.add_argument_group("model")
    m.add_argument("--cell", choices=("lstm", "gru"), default="lstm", help="recurrent cell")
    m.add_argument(
        "--embed-dim",
        type=int,
        default=_default(ModelConfig, "embed_dim"),
        help="size of a token embedding",
    )
    m.add_argument(
        "--hidden-size",
        type=int,
        default=_default(ModelConfig, "hidden_size"),
        help="units per recurrent layer",
    )
    m.add_argument(
        "--num-layers",
        type=int,
        default=_default(ModelConfig, "num_layers"),
        help="stacked recurrent layers",
    )
    m.add_argument(
        "--dropout",
        type=float,
        default=_default(ModelConfig, "dropout"),
        help="dropout on embeddings, between layers and before the head",
    )
    m.add_argument(
        "--embed-dropout",
        type=float,
        default=_default(ModelConfig, "embed_dropout"),
        help="drop whole words (embedding rows)",
    )
    m.add_argument(
        "--locked-dropout",
        action="store_true",
        help="one dropout mask per sequence (variational dropout)",
    )
    m.add_argument("--tie-weights", action="store_true")
    m.add_argument("--residual", action="store_true")
    o = p.add_argument_group("optimization")
    o.add_argument(
        "--optimizer",
        choices=("sgd", "adam", "adamw", "rmsprop"),
        default=_default(TrainConfig, "optimizer"),
    )
    o.add_argument(
        "--lr", type=float, default=_default(TrainConfig, "lr"), help="peak learning rate"
    )
    o.add_argument(
        "--weight-decay",
        type=float,
        default=_default(TrainConfig, "weight_decay"),
        help="L2 / decoupled decay on weight matrices",
    )
    o.add_argument(
        "--momentum",
        type=float,
        default=_default(TrainConfig, "momentum"),
        help="for sgd and rmsprop",
    )
    o.add_argument("--nesterov", action="store_true", help="Nesterov momentum (sgd)")
    o.add_argument(
        "--l1", type=float, default=_default(TrainConfig, "l1"), help="L1 penalty coefficient"
    )
    o.add_argument(
        "--clip-norm",
        type=float,
        default=_default(TrainConfig, "clip_norm"),
        help="0 disables",
    )
    o.add_argument(
        "--clip-value", type=float, default=None, help="clip each gradient element to [-v, v]"
    )
    o.add_argument(
        "--schedule", choices=("constant", "cosine", "step", "plateau"), default="cosine"
    )
    o.add_argument(
        "--warmup-steps",
        type=int,
        default=_default(TrainConfig, "warmup_steps"),
        help="linear learning-rate warm-up",
    )
    o.add_argument(
        "--batch-size",
        type=int,
        default=_default(TrainConfig, "batch_size"),
        help="parallel streams per batch",
    )
    o.add_argument(
        "--seq-len",
        type=int,
        default=_default(TrainConfig, "seq_len"),
        help="tokens per window (truncated BPTT length)",
    )
    o.add_argument(
        "--grad-accum-steps",
        type=int,
        default=1,
        help="split each batch into this many micro-batches",
    )
    r = p.add_argument_group("run")
    r.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="stop after this many passes over the training text",
    )
    r.add_argument(
        "--max-steps",
        type=int,
        default=_default(TrainConfig, "max_steps"),
        help="stop after this many optimizer steps (0: no limit)",
    )
    r.add_argument(
        "--max-time",
        type=float,
        default=None,
        metavar="SECONDS",
        help="stop after this much training time, counted across resumes",
    )
    r.add_argument(
        "--eval-every",
        type=int,
        default=_default(TrainConfig, "eval_every"),
        help="validate and write last.pt every N steps",
    )
    r.add_argument(
        "--log-every",
        type=int,
        default=_default(TrainConfig, "log_every"),
        help="append a training record to metrics.jsonl every N steps",
    )
    r.add_argument("--sample-every", type=int, default=0, help="print a sample every N steps")
    r.add_argument(
        "--early-stopping-patience",
        type=int,
        default=None,
        help="stop after N validations without improvement",
    )
    r.add_argument("--keep-last", type=int, default=0, help="also keep the last N step checkpoints")
    r.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    r.add_argument(
        "--precision",
        choices=("fp32", "bf16", "fp16"),
        default="fp32",
        help="bf16 autocast on CPU or CUDA; fp16 with a gradient scaler on CUDA",
    )
    r.add_argument(
        "--seed",
        type=int,
        default=_default(TrainConfig, "seed"),
        help="seeds weights, dropout and data order",
    )
    r.add_argument(
        "--overwrite", action="store_true", help="replace a run already in --out (default: refuse)"
    )
    r.add_argument("--resume", action="store_true", help="continue from DIR/last.pt exactly")
    r.add_argument("--quiet", action="store_true", help="no progress bar")


def _train(args: argparse.Namespace) -> int:
    from textgen.checkpoint import load_checkpoint, run_checkpoints
    from textgen.data import prepare_corpus
    from textgen.model import LSTMLanguageModel
    from textgen.runtime import seed_everything
    from textgen.tokenizers import build_tokenizer
    from textgen.trainer import TrainConfig, Trainer

    out = Path(args.out)
    data = _data_settings(args, out)
    if args.resume:
        checkpoint = load_checkpoint(out / "last.pt")
        tokenizer = checkpoint.tokenizer
        model_config = ModelConfig(**checkpoint.model_config)
    else:
        if run_checkpoints(out) and not args.overwrite:  # fail before preparing data
            raise ValueError(
                f"{out} already holds a run; pass --resume to continue it, --overwrite to start "
                "afresh, or choose another --out"
            )
        options: dict[str, Any] = {}
        if args.tokenizer == "bpe":
            options = {"vocab_size": args.vocab_size, "min_frequency": max(2, args.min_freq)}
        elif args.tokenizer == "word":
            options = {"min_freq": args.min_freq}
        else:
            options = {"unknown": args.unknown}
        tokenizer = build_tokenizer(args.tokenizer, **options)
    corpus = prepare_corpus(
        data["sources"],
        tokenizer,
        val_fraction=0.0 if data["val_file"] else data["val_fraction"],
        val_sources=data["val_file"],
        cache_dir=args.cache_dir,
        errors=data["encoding_errors"],
    )
    if not args.resume:
        model_config = ModelConfig(
            vocab_size=corpus.tokenizer.vocab_size,
            embed_dim=args.embed_dim,
            hidden_size=args.hidden_size,
            num_layers=args.num_layers,
            dropout=args.dropout,
            embed_dropout=args.embed_dropout,
            locked_dropout=args.locked_dropout,
            tie_weights=args.tie_weights,
            cell=args.cell,
            residual=args.residual,
        )
    settings: dict[str, Any] = dict(
        out_dir=str(out),
        batch_size=args.batch_size,
        seq_len=args.seq_len,
        batching=args.batching,
        epochs=args.epochs,
        max_steps=args.max_steps or None,  # 0: no step limit (use --epochs / --max-time)
        max_time=args.max_time,
        grad_accum_steps=args.grad_accum_steps,
        optimizer=args.optimizer,
        lr=args.lr,
        weight_decay=args.weight_decay,
        momentum=args.momentum,
        nesterov=args.nesterov,
        l1=args.l1,
        clip_norm=args.clip_norm or None,
        clip_value=args.clip_value,
        schedule=args.schedule,
        warmup_steps=args.warmup_steps,
        eval_every=args.eval_every,
        log_every=args.log_every,
        device=args.device,
        precision=args.precision,
        seed=args.seed,
        progress=not args.quiet,
        sample_every=args.sample_every,
        early_stopping_patience=args.early_stopping_patience,
        keep_last=args.keep_last,
        overwrite=args.overwrite,
    )
    if args.resume:  # a resumed run keeps its settings; only flags given now change them
        saved = checkpoint.metadata.get("train_config") or {}
        cli_names = {"out_dir": "out", "progress": "quiet"}
        for item in dataclasses.fields(TrainConfig):
            if item.name in saved and cli_names.get(item.name, item.name) not in args.explicit:
                settings[item.name] = saved[item.name]
        settings.update(out_dir=str(out), progress=not args.quiet)
    if {"epochs", "max_time"} & args.explicit and "max_steps" not in args.explicit:
        settings["max_steps"] = None  # --epochs / --max-time alone mean what they say
    if (
        not args.resume
        and settings["max_steps"] is None
        and not settings["epochs"]
        and "schedule" not in args.explicit
    ):
        # A time budget has no known length to decay over: cut the rate when validation stops
        # improving instead (as word_language_model does).
        settings["schedule"] = "plateau"
    config = TrainConfig(**settings)
    seed_everything(config.seed)  # the seed decides the initial weights too
    model = LSTMLanguageModel(model_config)
    if not args.quiet:
        print(
            f"training a {model_config.num_layers}-layer {model_config.cell.upper()} "
            f"({model.num_parameters():,} parameters) on {corpus.train.num_tokens:,} "
            f"{corpus.tokenizer.kind} tokens "
            f"(vocabulary {corpus.tokenizer.vocab_size}); run folder {out}",
            file=sys.stderr,
        )
    trainer = Trainer(model, corpus, config)
    if not args.resume:
        out.mkdir(parents=True, exist_ok=True)
        (out / "data.json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    result = trainer.fit(resume=args.resume)
    summary = f"stopped at step {result.step} ({result.stopped_by})"
    if result.best_val_loss is not None:
        summary += f"; best validation loss {result.best_val_loss:.4f} nats/token"
    print(f"{summary}; checkpoints in {out}", file=sys.stderr)
    return EXIT_INTERRUPTED if result.stopped_by == "signal" else 0


# ------------------------------------------------------------------------------- generate
def _add_generate(commands: Any) -> None:
    p = commands.add_parser(
        "generate",
        help="generate text from a trained model",
        description="Generate text from a run folder or checkpoint file.",
    )
    p.set_defaults(handler=_generate)
    p.add_argument("checkpoint", metavar="RUN_DIR_OR_FILE")
    p.add_argument("--prompt", default="", help="text to continue (default: empty)")
    p.add_argument("--prompt-file", default=None, help="read the prompt from a file")
    p.add_argument("--max-new-tokens", type=int, default=_default(SampleConfig, "max_new_tokens"))
    p.add_argument("--min-new-tokens", type=int, default=0)
    p.add_argument("--temperature", type=float, default=_default(SampleConfig, "temperature"))
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--top-p", type=float, default=None)
    p.add_argument("--min-p", type=float, default=None)
    p.add_argument("--typical-p", type=float, default=None)
    p.add_argument("--repetition-penalty", type=float, default=1.0)
    p.add_argument("--frequency-penalty", type=float, default=0.0)
    p.add_argument("--presence-penalty", type=float, default=0.0)
    p.add_argument("--no-repeat-ngram-size", type=int, default=0)
    p.add_argument(
        "--ban",
        action="append",
        default=[],
        metavar="TEXT",
        help="a string the output must never contain (repeatable)",
    )
    p.add_argument(
        "--stop",
        action="append",
        default=[],
        metavar="TEXT",
        help="stop before this string (repeatable)",
    )
    p.add_argument("--greedy", action="store_true", help="always take the most likely token")
    p.add_argument("--num-beams", type=int, default=1, help="beam search with this width")
    p.add_argument("--length-penalty", type=float, default=1.0)
    p.add_argument("--num-samples", type=int, default=1)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--device", default="auto")
    p.add_argument("--output", default=None, metavar="FILE", help="also write the text to FILE")
    p.add_argument("--no-stream", action="store_true", help="print only when finished")


def _generate(args: argparse.Namespace) -> int:
    from textgen.checkpoint import load_checkpoint
    from textgen.runtime import resolve_device
    from textgen.sampler import SampleConfig, Sampler

    prompt = args.prompt
    if args.prompt_file:
        prompt_path = Path(args.prompt_file)
        if not prompt_path.is_file():
            what = "is not a file" if prompt_path.exists() else "does not exist"
            raise FileNotFoundError(f"prompt file {prompt_path} {what}")
        prompt = prompt_path.read_text(encoding="utf-8")
    device = resolve_device(args.device)
    checkpoint = load_checkpoint(args.checkpoint)
    model = checkpoint.build_model(device)
    config = SampleConfig(
        max_new_tokens=args.max_new_tokens,
        min_new_tokens=args.min_new_tokens,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        min_p=args.min_p,
        typical_p=args.typical_p,
        repetition_penalty=args.repetition_penalty,
        frequency_penalty=args.frequency_penalty,
        presence_penalty=args.presence_penalty,
        no_repeat_ngram_size=args.no_repeat_ngram_size,
        bad_words=tuple(args.ban),
        stop=tuple(args.stop),
        greedy=args.greedy,
        num_beams=args.num_beams,
        length_penalty=args.length_penalty,
        num_samples=args.num_samples,
        seed=args.seed,
    )
    sampler = Sampler(model, checkpoint.tokenizer, device=device)
    texts: list[str] = []
    streaming = not args.no_stream and args.num_samples == 1 and args.num_beams == 1
    if streaming:
        pieces = [prompt]
        stream = sampler.stream(prompt, config)  # raises on a bad prompt before printing
        sys.stdout.write(prompt)
        for piece in stream:
            sys.stdout.write(piece)
            sys.stdout.flush()
            pieces.append(piece)
        sys.stdout.write("\n")
        texts.append("".join(pieces))
    else:
        for i, sample in enumerate(sampler.generate(prompt, config)):
            if args.num_samples > 1:
                print(f"=== sample {i + 1} ===")
            texts.append(prompt + sample.text)
            print(texts[-1])
    if args.output:
        separator = "\n\n" if len(texts) > 1 else ""
        Path(args.output).write_text(separator.join(texts), encoding="utf-8")
    return 0


# ------------------------------------------------------------------------------- evaluate
def _add_evaluate(commands: Any) -> None:
    p = commands.add_parser(
        "evaluate",
        help="loss, perplexity and bits per character/byte of a model on text files",
        description="Score text files with a model: nats/token, perplexity, bits per char and byte.",
    )
    p.set_defaults(handler=_evaluate)
    p.add_argument("checkpoint", metavar="RUN_DIR_OR_FILE")
    p.add_argument("files", nargs="+", metavar="TEXT_FILE")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--seq-len", type=int, default=256)
    p.add_argument("--device", default="auto")
    p.add_argument("--cache-dir", default=None, help="where encoded token ids are cached")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _evaluate(args: argparse.Namespace) -> int:
    from textgen.checkpoint import load_checkpoint
    from textgen.data import prepare_corpus
    from textgen.evaluation import evaluate_split
    from textgen.runtime import resolve_device

    device = resolve_device(args.device)
    checkpoint = load_checkpoint(args.checkpoint)
    model = checkpoint.build_model(device)
    # The whole text, encoded (and cached) with the model's own tokenizer: no split.
    split = prepare_corpus(
        args.files, checkpoint.tokenizer, val_fraction=0.0, cache_dir=args.cache_dir
    ).train
    metrics = evaluate_split(model, split, batch_size=args.batch_size, seq_len=args.seq_len)
    if args.json:
        print(json.dumps(metrics))
    else:
        print(f"tokens          {metrics['tokens']:,}")
        print(f"loss            {metrics['loss']:.4f} nats/token")
        print(f"perplexity      {metrics['perplexity']:.3f}")
        print(f"bits per token  {metrics['bits_per_token']:.4f}")
        print(f"bits per char   {_fmt(metrics['bits_per_char'])}")
        print(f"bits per byte   {_fmt(metrics['bits_per_byte'])}")
    return 0


# ----------------------------------------------------------------------------------- info
def _add_info(commands: Any) -> None:
    p = commands.add_parser(
        "info",
        help="describe a run folder or checkpoint",
        description="Show config, parameter count, vocabulary and progress.",
    )
    p.set_defaults(handler=_info)
    p.add_argument("checkpoint", metavar="RUN_DIR_OR_FILE")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _info(args: argparse.Namespace) -> int:
    from textgen.checkpoint import load_checkpoint

    path = Path(args.checkpoint)
    # For a run folder, report the run as it stands now: last.pt has the latest progress.
    if path.is_dir() and (path / "last.pt").is_file():
        path = path / "last.pt"
    checkpoint = load_checkpoint(path)
    model = checkpoint.build_model()
    tokenizer = checkpoint.tokenizer
    meta = checkpoint.metadata
    info = {
        "path": str(checkpoint.path),
        "model_config": checkpoint.model_config,
        "parameters": model.num_parameters(),
        "tokenizer": tokenizer.kind,
        "vocab_size": tokenizer.vocab_size,
        "step": meta.get("step"),
        "epoch": meta.get("epoch"),
        "tokens_seen": meta.get("tokens_seen"),
        "best_val_loss": meta.get("best_val_loss"),
        "resumable": checkpoint.train_state is not None,
        "train_config": meta.get("train_config"),
    }
    if args.json:
        print(json.dumps(info))
        return 0
    print(f"checkpoint      {info['path']}")
    print(f"model           {_describe(checkpoint.model_config)}")
    print(f"parameters      {info['parameters']:,}")
    print(f"tokenizer       {tokenizer.kind}, vocabulary {tokenizer.vocab_size}")
    print(
        f"progress        step {info['step']}, epoch {info['epoch']}, "
        f"{info['tokens_seen'] or 0:,} tokens seen"
    )
    best = info["best_val_loss"]
    print(f"best val loss   {'n/a' if best is None else f'{best:.4f} nats/token'}")
    print(f"resumable       {'yes' if info['resumable'] else 'no (weights only)'}")
    return 0


def _data_settings(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """Where the text comes from. A resumed run reads the same text as before (saved in
    ``out/data.json``) unless DATA or a data flag is given again."""
    data = {
        # absolute paths, so a resume from another folder finds the same files
        "sources": [
            str(Path(s).resolve()) if Path(s).exists() else s for s in args.data or ["shakespeare"]
        ],
        "val_fraction": args.val_fraction,
        "val_file": [str(Path(f).resolve()) for f in args.val_file] if args.val_file else None,
        "encoding_errors": args.encoding_errors,
    }
    saved_path = out / "data.json"
    if args.resume and saved_path.is_file():
        saved = json.loads(saved_path.read_text(encoding="utf-8"))
        given = {"sources": "data"}
        for key in data:
            if given.get(key, key) not in args.explicit and key in saved:
                data[key] = saved[key]
    return data


def _explicit_flags(argv: list[str]) -> set[str]:
    """Destinations of the flags given on the command line (not left at their defaults)."""
    probe = build_parser()
    for action in probe._actions:
        if isinstance(action, argparse._SubParsersAction):
            for subparser in action.choices.values():
                for sub_action in subparser._actions:
                    sub_action.default = argparse.SUPPRESS
                subparser._defaults.clear()
    return set(vars(probe.parse_args(argv))) - {"command"}


def _default(config_class: type, name: str) -> Any:
    """A flag's default is its config field's default: defaults live only in the dataclasses."""
    for item in dataclasses.fields(config_class):
        if item.name == name:
            return item.default
    raise AssertionError(f"{config_class.__name__} has no field {name!r}")


def _describe(config: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in config.items())


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


__all__ = ["build_parser", "main"]


# ----------------------------------------------------------------------------------- plot
def _add_plot(commands: Any) -> None:
    p = commands.add_parser(
        "plot",
        help="draw loss, learning rate and gradient norm of a run as a PNG",
        description="Plot RUN_DIR/metrics.jsonl: loss (bits per char), learning rate and "
        "gradient norm against steps. Needs matplotlib: pip install 'textgen[plot]'.",
    )
    p.set_defaults(handler=_plot)
    p.add_argument("run", metavar="RUN_DIR", help="a run folder, or a metrics.jsonl file")
    p.add_argument(
        "--output",
        default=None,
        metavar="FILE",
        help="PNG to write (default: metrics.png beside metrics.jsonl)",
    )


def _plot(args: argparse.Namespace) -> int:
    from textgen.plot import plot_metrics

    try:
        path = plot_metrics(args.run, args.output)
    except ImportError as error:  # matplotlib missing: one line, not a traceback
        raise ValueError(str(error)) from None
    print(path)
    return 0
