"""What dropout costs a training step on the CPU, by layout and precision (run by hand).

A bare hand-written loop of one model (embedding, 2-layer LSTM, linear head, cross-entropy,
AdamW, clip) timed, interleaved round by round, in these layouts:

* ``fused``: one multi-layer `nn.LSTM` with its own between-layer dropout and `F.dropout` on
  the embedding and before the head: word_language_model's layout;
* ``per-layer``: the same weights run one layer at a time (``torch.lstm``), `F.dropout`
  everywhere;
* ``textgen``: textgen's own `LSTMLanguageModel` in training mode (on the CPU: one layer at a
  time, `textgen.dropout` everywhere);
* ``no dropout``: the fused module with dropout off (the ceiling);

each in fp32 and bf16 autocast (bf16 where the CPU has it). Ratios are against the fused fp32
loop (word_language_model's layout and precision). Prints machine, torch, threads, medians.

    python benchmarks/bench_dropout.py                    # word_language_model's 2 x 256 model
    python benchmarks/bench_dropout.py --hidden-size 384 --embed-dim 128 --seq-len 128 --dropout 0.1
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from textgen.model import LSTMLanguageModel, ModelConfig
from textgen.runtime import bf16_supported

LAYOUTS = ("fused", "per-layer", "textgen", "no dropout")


def step_fn(args, layout: str, bf16: bool) -> Callable[[torch.Tensor, torch.Tensor], float]:
    torch.manual_seed(0)
    vocab, p = args.vocab, args.dropout
    if layout == "textgen":
        model = LSTMLanguageModel(
            ModelConfig(
                vocab_size=vocab, embed_dim=args.embed_dim, hidden_size=args.hidden_size,
                num_layers=2, dropout=p,
            )
        ).train()  # fmt: skip
        return _train_step(args, lambda x: model(x, check=False)[0], model.parameters(), bf16)
    embedding = nn.Embedding(vocab, args.embed_dim)
    between = p if layout == "fused" else 0.0
    rnn = nn.LSTM(args.embed_dim, args.hidden_size, 2, batch_first=True, dropout=between)
    head = nn.Linear(args.hidden_size, vocab)
    weights = [
        [getattr(rnn, f"{name}_l{i}") for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
        for i in range(2)
    ]
    drop = (lambda x: x) if layout == "no dropout" else (lambda x: F.dropout(x, p))

    def forward(x: torch.Tensor) -> torch.Tensor:
        h = drop(embedding(x))
        if layout in ("fused", "no dropout"):
            h, _ = rnn(h)
        else:
            zeros = torch.zeros(1, x.shape[0], args.hidden_size)
            for i in range(2):
                if i:
                    h = drop(h)
                h, _, _ = torch.lstm(h, (zeros, zeros), weights[i], True, 1, 0.0, True, False, True)
        return head(drop(h))

    params = [q for m in (embedding, rnn, head) for q in m.parameters()]
    return _train_step(args, forward, params, bf16)


def _train_step(
    args,
    forward: Callable[[torch.Tensor], torch.Tensor],
    params: Iterable[nn.Parameter],
    bf16: bool,
) -> Callable[[torch.Tensor, torch.Tensor], float]:
    """One AdamW step of ``forward``'s logits under cross-entropy, clipped at 0.25."""
    params = list(params)
    optimizer = torch.optim.AdamW(params, lr=2e-3)

    def step(x: torch.Tensor, y: torch.Tensor) -> float:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = forward(x)
        loss = F.cross_entropy(logits.float().reshape(-1, args.vocab), y.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(params, 0.25)
        optimizer.step()
        return loss.item()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--embed-dim", type=int, default=256)
    parser.add_argument("--hidden-size", type=int, default=256)
    parser.add_argument("--dropout", type=float, default=0.2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=100)
    parser.add_argument("--vocab", type=int, default=65)
    parser.add_argument("--rounds", type=int, default=6, help="interleaved rounds")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per case per round")
    args = parser.parse_args()

    precisions = [False] + ([True] if bf16_supported(torch.device("cpu")) else [])
    cases = {
        (layout, bf16): step_fn(args, layout, bf16) for bf16 in precisions for layout in LAYOUTS
    }
    generator = torch.Generator().manual_seed(0)
    x = torch.randint(0, args.vocab, (args.batch_size, args.seq_len), generator=generator)
    y = torch.randint(0, args.vocab, (args.batch_size, args.seq_len), generator=generator)
    rates: dict[tuple[str, bool], list[float]] = {case: [] for case in cases}
    for round_index in range(args.rounds + 1):  # round 0 warms up
        for case, step in cases.items():
            start = time.perf_counter()
            for _ in range(args.steps):
                step(x, y)
            if round_index:
                rates[case].append(args.steps * x.numel() / (time.perf_counter() - start))

    print(
        f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
    )
    print(
        f"model 2x{args.hidden_size} (embed {args.embed_dim}, dropout {args.dropout}), batch "
        f"{args.batch_size}x{args.seq_len}; medians of {args.rounds} rounds of {args.steps} steps"
    )
    base = statistics.median(rates[("fused", False)])
    for (layout, bf16), values in rates.items():
        rate = statistics.median(values)
        name = f"{layout}, {'bf16' if bf16 else 'fp32'}"
        print(f"{name:22s} {rate:10,.0f} tokens/s  {rate / base:5.2f}x fused fp32")


if __name__ == "__main__":
    main()
