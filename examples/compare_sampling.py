"""Compare decoding strategies side by side on one model.

    python examples/compare_sampling.py                         # trains a quick model first
    python examples/compare_sampling.py --checkpoint runs/char_lstm --prompt "IAGO."

Greedy decoding and beam search pick the most probable tokens and tend to loop; sampling at
temperature 1 is varied but error-prone; temperature, top-k, top-p (nucleus), min-p and a
repetition penalty trade between the two. Every strategy gets the same prompt and seed.
"""

from __future__ import annotations

import argparse
import dataclasses
import textwrap

from textgen import (
    LSTMLanguageModel,
    ModelConfig,
    SampleConfig,
    Sampler,
    Tokenizer,
    TrainConfig,
    Trainer,
    load_checkpoint,
    prepare_corpus,
    resolve_device,
)

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
    parser.add_argument("--checkpoint", default=None, help="run folder or .pt file to sample")
    parser.add_argument("--out", default="runs/compare_sampling", help="run folder (training)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--hidden-size", type=int, default=128)
    parser.add_argument("--max-steps", type=int, default=250, help="training steps")
    parser.add_argument("--prompt", default="\nOTHELLO.\n")
    parser.add_argument("--length", type=int, default=160, help="new tokens per strategy")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    device = resolve_device(args.device)
    if args.checkpoint:
        checkpoint = load_checkpoint(args.checkpoint)
        model, tokenizer = checkpoint.build_model(device), checkpoint.tokenizer
    else:
        model, tokenizer = train_quick_model(args)
    sampler = Sampler(model, tokenizer, device=device)

    for name, config in STRATEGIES.items():
        config = dataclasses.replace(config, max_new_tokens=args.length, seed=args.seed)
        text = sampler.generate(args.prompt, config)[0].text
        print(f"=== {name} ".ljust(72, "="))
        print(textwrap.indent(args.prompt + text, "  "))


def train_quick_model(args: argparse.Namespace) -> tuple[LSTMLanguageModel, Tokenizer]:
    """A small character model on the bundled corpus: good enough to tell strategies apart."""
    corpus = prepare_corpus("shakespeare", val_fraction=0.02)
    model = LSTMLanguageModel(
        ModelConfig(
            vocab_size=corpus.tokenizer.vocab_size,
            embed_dim=64,
            hidden_size=args.hidden_size,
            num_layers=2,
            dropout=0.0,
        )
    )
    config = TrainConfig(
        out_dir=args.out,
        overwrite=True,  # an example reruns into the same folder; your runs need not
        batch_size=32,
        seq_len=64,
        max_steps=args.max_steps,
        eval_every=args.max_steps,
        eval_batches=10,
        lr=5e-3,
        device=args.device,
    )
    Trainer(model, corpus, config).fit()
    return model, corpus.tokenizer


if __name__ == "__main__":
    main()
