"""Training throughput of `Trainer.train_step`, side by side in one run (run by hand).

Measures tokens/s of full optimizer steps (forward, loss, backward, clip, AdamW step) on the
bundled corpus for a few model layouts and precisions, and prints each as a ratio to the
default (fused multi-layer LSTM, fp32). Medians over repeated steps after a warm-up.

    python benchmarks/bench_train.py                  # CPU, the default run's model size
    python benchmarks/bench_train.py --device cuda --hidden-size 1024 --batch-size 128
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch

from textgen import LSTMLanguageModel, ModelConfig, TrainConfig, Trainer, prepare_corpus


def measure(corpus, args, *, precision: str, **model_options) -> float:
    """Median tokens/s of ``args.steps`` train steps after ``args.warmup`` warm-up steps."""
    torch.manual_seed(0)
    model = LSTMLanguageModel(
        ModelConfig(
            vocab_size=corpus.tokenizer.vocab_size,
            embed_dim=args.embed_dim,
            hidden_size=args.hidden_size,
            num_layers=args.num_layers,
            **model_options,
        )
    )
    config = TrainConfig(
        out_dir=tempfile.mkdtemp(prefix="textgen-bench-"),
        batch_size=args.batch_size,
        seq_len=args.seq_len,
        device=args.device,
        precision=precision,
        progress=False,
    )
    trainer = Trainer(model, corpus, config)
    batches = iter(trainer.batcher)
    seconds = []
    for i in range(args.warmup + args.steps):
        x, y = next(batches)
        if trainer.device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        trainer.train_step(x, y)
        if trainer.device.type == "cuda":
            torch.cuda.synchronize()
        if i >= args.warmup:
            seconds.append(time.perf_counter() - start)
    return args.batch_size * args.seq_len / statistics.median(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--embed-dim", type=int, default=64)
    parser.add_argument("--hidden-size", type=int, default=256)
    parser.add_argument("--num-layers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()

    corpus = prepare_corpus("shakespeare")
    device = torch.device(args.device)
    cases: list[tuple[str, str, dict]] = [
        ("fused nn.LSTM, fp32 (default)", "fp32", {}),
        ("fused nn.LSTM, bf16 autocast", "bf16", {}),
        ("per-layer LSTMs (locked dropout), fp32", "fp32", {"locked_dropout": True}),
        ("per-layer LSTMs (residual), fp32", "fp32", {"residual": True}),
        ("GRU, fp32", "fp32", {"cell": "gru"}),
    ]
    if device.type == "cuda":
        cases.insert(2, ("fused nn.LSTM, fp16 + grad scaler", "fp16", {}))
    print(
        f"{args.num_layers}x{args.hidden_size} model, batch {args.batch_size} x {args.seq_len}, "
        f"{args.device}, {torch.get_num_threads()} threads; median of {args.steps} steps"
    )
    baseline = None
    for name, precision, options in cases:
        rate = measure(corpus, args, precision=precision, **options)
        baseline = baseline or rate
        print(f"{name:42s} {rate:10,.0f} tokens/s   {rate / baseline:5.2f}x")


if __name__ == "__main__":
    main()
