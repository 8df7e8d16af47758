"""``textgen generate``: every `SampleConfig` field is a flag; text streams to stdout.

Three ways out: plain text (streamed when there is one sample), ``--jsonl`` (one JSON object per
sample and line, for scripts: nothing else goes to stdout) and ``--interactive`` (prompts read
from stdin, `textgen.cli.interactive`). The model is a run folder, a checkpoint file or the name
of a bundled pretrained model (``textgen generate shakespeare``). With ``--novelty`` each sample
is followed by a one-line copy report on stderr (`textgen.novelty`), or, with ``--jsonl``, a
``novelty`` field in its line.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any

from textgen.atomic import atomic_write_text
from textgen.cli.flags import add_config_flags, given_values
from textgen.cli.interactive import interact
from textgen.data.sources import BOM
from textgen.novelty import NoveltyIndex, NoveltyReport
from textgen.runtime import describe_device, resolve_device
from textgen.sampler import SampleConfig, Sampler, with_overrides


def add_parsers(commands: Any) -> None:
    p = commands.add_parser(
        "generate",
        help="generate text from a trained model",
        description="Generate text from a run folder (its best.pt), a checkpoint file or a "
        "bundled pretrained model name (such as 'shakespeare').",
    )
    p.set_defaults(handler=run)
    p.add_argument(
        "checkpoint",
        metavar="RUN_OR_CHECKPOINT_OR_NAME",
        help="a run folder, a .pt file or a pretrained model name",
    )
    p.add_argument("--prompt", default="", help="text to continue (default: empty)")
    p.add_argument(
        "--prompt-file",
        metavar="FILE",
        help="read the prompt from a UTF-8 file (as training files are read: line endings kept, "
        "a byte-order mark dropped)",
    )
    p.add_argument(
        "--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)"
    )
    p.add_argument(
        "--output",
        metavar="FILE",
        help="also write the text to FILE (what was generated is kept if interrupted)",
    )
    p.add_argument("--no-stream", action="store_true", help="print only when finished")
    p.add_argument(
        "--novelty",
        action="store_true",
        help="after each sample, report on stderr how much of it is copied from the run's "
        "training text (see textgen novelty); with --jsonl, a novelty field in its line",
    )
    p.add_argument(
        "--novelty-min-span",
        type=int,
        default=50,
        metavar="N",
        help="with --novelty: the shortest span, in characters, counted as copied (default: 50)",
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--jsonl",
        action="store_true",
        help="print one JSON object per sample and line: text, prompt, tokens, finish_reason "
        "(eos, stop or length) and seed",
    )
    mode.add_argument(
        "--interactive",
        action="store_true",
        help="read prompts from stdin, one per line, and answer each; ':temperature 0.7' "
        "style lines change settings; end with Ctrl-D",
    )
    add_config_flags(p, SampleConfig, section="sample", exclude=("return_logprobs",))
    aliases = p.add_argument_group("Hugging Face names (aliases of the flags above)")
    aliases.add_argument(
        "--do-sample",
        action=argparse.BooleanOptionalAction,
        default=argparse.SUPPRESS,
        dest="alias.do_sample",
        help="--no-do-sample is --greedy; --do-sample is --no-greedy",
    )
    aliases.add_argument(
        "--num-return-sequences",
        type=int,
        metavar="N",
        default=argparse.SUPPRESS,
        dest="alias.num_return_sequences",
        help="the same as --num-samples",
    )


def run(args: argparse.Namespace) -> int:
    # Checked before anything loads; Hugging Face's names map onto the fields they alias.
    overrides = {**given_values(args, "sample"), **given_values(args, "alias")}
    config = with_overrides(SampleConfig(), overrides)
    prompt = args.prompt
    if args.prompt_file:
        prompt_path = Path(args.prompt_file)
        if not prompt_path.is_file():
            what = "is not a file" if prompt_path.exists() else "does not exist"
            raise FileNotFoundError(f"prompt file {prompt_path} {what}")
        prompt = read_prompt_file(prompt_path)
    if args.novelty_min_span < 1:
        raise ValueError(f"--novelty-min-span must be >= 1, got {args.novelty_min_span}")
    device = resolve_device(args.device)
    sampler = Sampler.from_checkpoint(args.checkpoint, device=device)
    # Built (or loaded) before sampling: a run without training data fails before any output.
    novelty = (
        NoveltyIndex.for_run(args.checkpoint, tokenizer=sampler.tokenizer) if args.novelty else None
    )
    if args.device.strip().lower() == "auto":  # say what auto chose, once the inputs are good
        print(describe_device(args.device, device), file=sys.stderr)
    if args.interactive:
        return interact(sampler, config)
    if args.jsonl:
        return _jsonl(sampler, prompt, config, args.output, novelty, args.novelty_min_span)
    texts: list[str] = []
    if not args.no_stream and config.num_samples == 1 and config.num_beams == 1:
        pieces = [prompt]
        stream = sampler.stream(prompt, config)  # raises on a bad prompt before printing
        try:
            sys.stdout.write(prompt)
            for piece in stream:
                sys.stdout.write(piece)
                sys.stdout.flush()
                pieces.append(piece)
            sys.stdout.write("\n")
        finally:  # interrupted (Ctrl-C, a closed pipe, an error): keep what was generated
            if args.output:
                _write_output(args.output, ["".join(pieces)])
        _report_novelty(novelty, "".join(pieces[1:]), args.novelty_min_span)
        return 0
    for i, sample in enumerate(sampler.generate(prompt, config)):
        if config.num_samples > 1:
            print(f"=== sample {i + 1} ===")
        texts.append(prompt + sample.text)
        print(texts[-1])
        _report_novelty(novelty, sample.text, args.novelty_min_span)
    if args.output:
        _write_output(args.output, texts)
    return 0


def _jsonl(
    sampler: Sampler,
    prompt: str,
    config: SampleConfig,
    output: str | None,
    novelty: NoveltyIndex | None = None,
    min_span: int = 50,
) -> int:
    """One JSON object per sample and line, and nothing else, on stdout (with ``novelty``, the
    copy report as a field instead of a line on stderr)."""
    if config.seed is None:  # a seed of our own, so every line says how to get it again
        config = dataclasses.replace(config, seed=int.from_bytes(os.urandom(4), "little"))
    assert config.seed is not None
    texts = []
    for i, sample in enumerate(sampler.generate(prompt, config)):
        record = {
            "text": sample.text,
            "prompt": prompt,
            "tokens": len(sample.token_ids),
            "finish_reason": sample.finish_reason,
            "seed": config.seed + i if config.num_beams == 1 else None,
        }
        if novelty is not None:
            record["novelty"] = _novelty_fields(novelty.report(sample.text, min_span=min_span))
        print(json.dumps(record, ensure_ascii=False), flush=True)
        texts.append(prompt + sample.text)
    if output:
        _write_output(output, texts)
    return 0


def _report_novelty(index: NoveltyIndex | None, sample: str, min_span: int) -> None:
    """One line on stderr about the generated text (the prompt left out): stdout stays text."""
    if index is not None:
        report = index.report(sample, min_span=min_span)
        print(f"novelty: {report.summary()}", file=sys.stderr, flush=True)


def _novelty_fields(report: NoveltyReport) -> dict[str, Any]:
    """The one-line report as JSON fields: the longest copied span and the copied fraction."""
    longest = report.longest
    return {
        "longest_chars": 0 if longest is None else longest.num_chars,
        "longest_tokens": 0 if longest is None else longest.num_tokens,
        "longest_text_char": None if longest is None else longest.text_char,
        "longest_train_char": None if longest is None else longest.train_char,
        "copied_fraction": report.copied_fraction,
        "copied_spans": len(report.spans),
        "min_span": report.min_span,
    }


def read_prompt_file(path: Path) -> str:
    """The text of a prompt file, read as training text is: UTF-8, line endings kept as they
    are (``\r\n`` stays), a byte-order mark at the start dropped.

    Raises:
        ValueError: the file is not UTF-8 (naming it and the byte offset).
    """
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(
            f"prompt file {path}: invalid UTF-8 at byte offset {error.start} ({error.reason})"
        ) from None
    return text.removeprefix(BOM)


def _write_output(output: str, texts: list[str]) -> None:
    atomic_write_text(output, ("\n\n" if len(texts) > 1 else "").join(texts), what="output")
