"""Train a word-level LSTM on your own text files (default: the bundled Shakespeare corpus).

    python examples/train_word_lstm.py my_novel.txt more_texts/       # files or folders
    python examples/train_word_lstm.py                                # bundled corpus

Words, punctuation and runs of whitespace are tokens, so generated text keeps its layout. Words
seen fewer than ``--min-freq`` times map to ``<unk>``: a smaller vocabulary trains faster.
"""

from __future__ import annotations

import argparse

from textgen import (
    LSTMLanguageModel,
    ModelConfig,
    Sampler,
    TrainConfig,
    Trainer,
    WordTokenizer,
    prepare_corpus,
    seed_everything,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "paths", nargs="*", help="text files or folders of *.txt (default: bundled Shakespeare)"
    )
    parser.add_argument("--out", default="runs/word_lstm", help="run folder")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--min-freq", type=int, default=3, help="rarer words become <unk>")
    parser.add_argument("--max-vocab", type=int, default=8000)
    parser.add_argument("--embed-dim", type=int, default=128)
    parser.add_argument("--hidden-size", type=int, default=256)
    parser.add_argument("--num-layers", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=32)
    parser.add_argument("--max-steps", type=int, default=200)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--prompt", default="The ")
    parser.add_argument("--sample-length", type=int, default=80, help="in words and spaces")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    sources = args.paths or ["shakespeare"]
    tokenizer = WordTokenizer(min_freq=args.min_freq, max_size=args.max_vocab, unknown="unk")
    corpus = prepare_corpus(sources, tokenizer, val_fraction=0.05)
    print(
        f"{corpus.train.num_tokens:,} training tokens from {', '.join(map(str, sources))}; "
        f"vocabulary of {corpus.tokenizer.vocab_size:,}"
    )

    seed_everything(args.seed)  # the seed decides the initial weights, so runs repeat
    model = LSTMLanguageModel(
        ModelConfig(
            vocab_size=corpus.tokenizer.vocab_size,
            embed_dim=args.embed_dim,
            hidden_size=args.hidden_size,
            num_layers=args.num_layers,
            dropout=0.2,
            # Word vocabularies are large: sharing the embedding with the output head saves
            # vocab_size * embed_dim parameters and usually helps.
            tie_weights=True,
        )
    )
    print(f"model: {model.num_parameters():,} parameters")
    config = TrainConfig(
        out_dir=args.out,
        overwrite=True,  # an example reruns into the same folder; your runs need not
        batch_size=args.batch_size,
        seq_len=args.seq_len,
        max_steps=args.max_steps,
        eval_every=args.eval_every,
        eval_batches=20,
        lr=3e-3,
        device=args.device,
        seed=args.seed,
    )
    result = Trainer(model, corpus, config).fit()
    if result.best_val_loss is not None:
        print(f"best validation loss {result.best_val_loss:.3f} nats per word-token")

    sampler = Sampler(model, corpus.tokenizer)
    sample = sampler.generate(
        args.prompt, max_new_tokens=args.sample_length, top_k=40, temperature=0.9, seed=0
    )[0]
    print("-" * 60)
    print(args.prompt + sample.text)


if __name__ == "__main__":
    main()
