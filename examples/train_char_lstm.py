"""Train a character-level LSTM on the bundled Shakespeare corpus, then print a sample.

    python examples/train_char_lstm.py                    # about a minute on a 2-core CPU
    python examples/train_char_lstm.py --device cuda --hidden-size 512 --max-steps 3000

The run folder (``--out``) ends up with ``best.pt``, ``last.pt`` and ``metrics.jsonl``, so the
model can be used afterwards from the command line: ``textgen generate runs/char_lstm``.
"""

from __future__ import annotations

import argparse

from textgen import (
    LSTMLanguageModel,
    ModelConfig,
    Sampler,
    TrainConfig,
    Trainer,
    prepare_corpus,
    seed_everything,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="runs/char_lstm", help="run folder")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--embed-dim", type=int, default=64)
    parser.add_argument("--hidden-size", type=int, default=192)
    parser.add_argument("--num-layers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--max-steps", type=int, default=300)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument(
        "--prompt",
        default="\nOTHELLO.\n",
        help="speeches start after a blank line and a name; the corpus has Hamlet, Othello, ...",
    )
    parser.add_argument("--sample-length", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    # 1. Text -> token ids. The char tokenizer is fitted on the training split; the ids are
    #    cached on disk (in $TEXTGEN_CACHE or ~/.cache/textgen), so a second run starts at once.
    corpus = prepare_corpus("shakespeare", tokenizer_kind="char", val_fraction=0.05)
    print(
        f"{corpus.train.num_tokens:,} training characters, "
        f"vocabulary of {corpus.tokenizer.vocab_size} symbols"
    )

    # 2. The model: embedding -> stacked LSTM -> linear head over the vocabulary.
    seed_everything(args.seed)  # the seed decides the initial weights, so runs repeat
    model = LSTMLanguageModel(
        ModelConfig(
            vocab_size=corpus.tokenizer.vocab_size,
            embed_dim=args.embed_dim,
            hidden_size=args.hidden_size,
            num_layers=args.num_layers,
            dropout=0.1,
        )
    )
    print(f"model: {model.num_parameters():,} parameters")

    # 3. Train: truncated BPTT over contiguous streams, AdamW, gradient clipping, cosine decay.
    config = TrainConfig(
        out_dir=args.out,
        overwrite=True,  # an example reruns into the same folder; your runs need not
        batch_size=args.batch_size,
        seq_len=args.seq_len,
        max_steps=args.max_steps,
        eval_every=args.eval_every,
        eval_batches=20,  # a quick validation estimate; `textgen evaluate` scores it all
        lr=4e-3,
        device=args.device,
        seed=args.seed,
    )
    result = Trainer(model, corpus, config).fit()
    print(f"stopped at step {result.step}; best validation loss {result.best_val_loss:.3f} nats")

    # 4. Sample from the trained model (nucleus sampling, seeded so the output repeats).
    sampler = Sampler(model, corpus.tokenizer)
    sample = sampler.generate(
        args.prompt, max_new_tokens=args.sample_length, temperature=0.8, top_p=0.95, seed=0
    )[0]
    print("-" * 60)
    print(args.prompt + sample.text)


if __name__ == "__main__":
    main()
