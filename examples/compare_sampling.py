"""Compare decoding strategies side by side on one model.

    python examples/compare_sampling.py                  # the bundled model: no training
    python examples/compare_sampling.py --checkpoint runs/char_lstm --prompt "IAGO."

Greedy decoding and beam search pick the most probable tokens and tend to loop; sampling at
temperature 1 is varied but error-prone; temperature, top-k, top-p (nucleus), min-p and a
repetition penalty trade between the two. Every strategy gets the same prompt and seed.
"""

from __future__ import annotations

import argparse
import dataclasses
import textwrap

from textgen import SampleConfig, Sampler

STRATEGIES = {
    "greedy": SampleConfig(greedy=True),
    "temperature 1.0": SampleConfig(temperature=1.0),
    "temperature 0.6": SampleConfig(temperature=0.6),
    "top-k 10": SampleConfig(top_k=10),
    "top-p 0.9": SampleConfig(top_p=0.9),
    "min-p 0.1": SampleConfig(min_p=0.1),
    "repetition penalty 1.3 (greedy)": SampleConfig(greedy=True, repetition_penalty=1.3),
    "beam search, 4 beams": SampleConfig(num_beams=4),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--checkpoint",
        default="shakespeare",
        help="run folder, .pt file or pretrained name (default: the bundled Shakespeare model)",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--prompt", default="\nOTHELLO.\n")
    parser.add_argument("--length", type=int, default=160, help="new tokens per strategy")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    sampler = Sampler.from_checkpoint(args.checkpoint, device=args.device)
    for name, config in STRATEGIES.items():
        config = dataclasses.replace(config, max_new_tokens=args.length, seed=args.seed)
        text = sampler.generate(args.prompt, config)[0].text
        print(f"=== {name} ".ljust(72, "="))
        print(textwrap.indent(args.prompt + text, "  "))


if __name__ == "__main__":
    main()
