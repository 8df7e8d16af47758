"""``textgen generate``: every `SampleConfig` field is a flag; text streams to stdout.

Three ways out: plain text (streamed when there is one sample), ``--jsonl`` (one JSON object per
sample and line, for scripts: nothing else goes to stdout) and ``--interactive`` (prompts read
from stdin, `textgen.cli.interactive`). The model is a run folder, a checkpoint file or the name
of a bundled pretrained model (``textgen generate shakespeare``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any

from textgen.cli.flags import add_config_flags, given_values
from textgen.cli.interactive import interact
from textgen.sampler import SampleConfig, Sampler


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
    p.add_argument("--prompt-file", metavar="FILE", help="read the prompt from a UTF-8 file")
    p.add_argument(
        "--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)"
    )
    p.add_argument("--output", metavar="FILE", help="also write the text to FILE")
    p.add_argument("--no-stream", action="store_true", help="print only when finished")
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


def run(args: argparse.Namespace) -> int:
    config = SampleConfig(**given_values(args, "sample"))  # checked before anything loads
    prompt = args.prompt
    if args.prompt_file:
        prompt_path = Path(args.prompt_file)
        if not prompt_path.is_file():
            what = "is not a file" if prompt_path.exists() else "does not exist"
            raise FileNotFoundError(f"prompt file {prompt_path} {what}")
        prompt = prompt_path.read_text(encoding="utf-8")
    sampler = Sampler.from_checkpoint(args.checkpoint, device=args.device)
    if args.interactive:
        return interact(sampler, config)
    texts: list[str] = []
    if args.jsonl:
        if config.seed is None:  # a seed of our own, so every line says how to get it again
            config = dataclasses.replace(config, seed=int.from_bytes(os.urandom(4), "little"))
        assert config.seed is not None
        for i, sample in enumerate(sampler.generate(prompt, config)):
            record = {
                "text": sample.text,
                "prompt": prompt,
                "tokens": len(sample.token_ids),
                "finish_reason": sample.finish_reason,
                "seed": config.seed + i if config.num_beams == 1 else None,
            }
            print(json.dumps(record, ensure_ascii=False), flush=True)
            texts.append(prompt + sample.text)
    elif not args.no_stream and config.num_samples == 1 and config.num_beams == 1:
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
            if config.num_samples > 1:
                print(f"=== sample {i + 1} ===")
            texts.append(prompt + sample.text)
            print(texts[-1])
    if args.output:
        Path(args.output).write_text(("\n\n" if len(texts) > 1 else "").join(texts), "utf-8")
    return 0
