"""Training throughput, side by side in one run: the Trainer against a plain loop (run by hand).

For one model size it times, interleaved round by round so machine noise hits every case alike:

* `Trainer.train_step` (forward, loss, backward, clip, AdamW, bookkeeping) and a plain
  hand-written loop of the same model, dropout, batch and precision (embedding, `nn.LSTM`,
  linear head, cross-entropy, backward, clip, AdamW, carried detached state) — their ratio is
  the Trainer's overhead;
* each of those with the recurrent layers on oneDNN and on the native kernel (CPU);
* fp32 and bf16 autocast (bf16 only where the device supports it);

and reports model FLOPs utilisation (MFU): the model's training FLOPs per second over a matrix
multiply peak measured in the same run. Prints machine, torch, threads, medians and ratios.

The plain loop drops out with `nn.Dropout` and the fused module's own between-layer dropout;
textgen's model draws its masks with `textgen.dropout` (faster on the CPU), so on the CPU with
dropout the Trainer / plain ratio includes that gain: the last lines time the two mask draws
alone on the activations of one step, and ``--dropout 0`` isolates the Trainer's overhead.

    python benchmarks/bench_train.py                          # the default model size, CPU
    python benchmarks/bench_train.py --kernels onednn         # skip the slow native kernel
    python benchmarks/bench_train.py --hidden-size 512 --dropout 0
    python benchmarks/bench_train.py --device cuda --hidden-size 1024 --num-layers 3 --batch-size 128
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from textgen import LSTMLanguageModel, ModelConfig, TrainConfig, Trainer, prepare_corpus
from textgen.data import StreamBatcher
from textgen.dropout import dropout
from textgen.kernels import cpu_kernel
from textgen.runtime import autocast, bf16_supported


class PlainLM(nn.Module):
    """The plain loop's model: what a user would write by hand."""

    def __init__(self, vocab: int, embed: int, hidden: int, layers: int, dropout: float) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab, embed)
        self.drop = nn.Dropout(dropout)
        self.rnn = nn.LSTM(embed, hidden, layers, batch_first=True, dropout=dropout * (layers > 1))
        self.head = nn.Linear(hidden, vocab)

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, ...] | None):
        out, state = self.rnn(self.drop(self.embedding(x)), state)
        return self.head(self.drop(out)), state


def plain_step_fn(args, vocab: int, device: torch.device, precision: str) -> Callable:
    torch.manual_seed(0)
    model = PlainLM(vocab, args.embed_dim, args.hidden_size, args.num_layers, args.dropout)
    model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    carried: list = [None]

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        x, y = x.to(device), y.to(device)
        state = carried[0]
        if state is not None:
            state = tuple(s.detach() for s in state)
        with autocast(precision, device):
            logits, state = model(x, state)
        loss = F.cross_entropy(logits.float().reshape(-1, vocab), y.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        carried[0] = state
        loss.item()  # the plain loop reads its loss too

    return step


def trainer_step_fn(args, corpus, device: torch.device, precision: str) -> Callable:
    torch.manual_seed(0)
    model = LSTMLanguageModel(
        ModelConfig(
            vocab_size=corpus.tokenizer.vocab_size,
            embed_dim=args.embed_dim,
            hidden_size=args.hidden_size,
            num_layers=args.num_layers,
            dropout=args.dropout,
        )
    )
    config = TrainConfig(
        out_dir=tempfile.mkdtemp(prefix="textgen-bench-"),
        batch_size=args.batch_size,
        seq_len=args.seq_len,
        device=str(device),
        precision=precision,
        progress=False,
    )
    trainer = Trainer(model, corpus, config)
    return trainer.train_step


def training_flops_per_token(args, vocab: int) -> float:
    """Multiply-adds x 2 of forward + backward (about 3x forward) per token."""
    flops = 0.0
    for layer in range(args.num_layers):
        inputs = args.embed_dim if layer == 0 else args.hidden_size
        flops += 2 * 4 * args.hidden_size * (inputs + args.hidden_size)
    flops += 2 * args.hidden_size * vocab
    return 3 * flops


def matmul_peak(device: torch.device, dtype: torch.dtype, size: int = 1024) -> float:
    """FLOP/s of a large square matrix multiply (the ceiling a training step can approach)."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    times = []
    for _ in range(7):
        start = time.perf_counter()
        a @ b
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return 2 * size**3 / statistics.median(times[2:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    # textgen's defaults, read from the configs so the benchmark follows them
    model, train = ModelConfig(vocab_size=2), TrainConfig()
    parser.add_argument("--embed-dim", type=int, default=model.embed_dim)
    parser.add_argument("--hidden-size", type=int, default=model.hidden_size)
    parser.add_argument("--num-layers", type=int, default=model.num_layers)
    parser.add_argument("--dropout", type=float, default=model.dropout)
    parser.add_argument("--batch-size", type=int, default=train.batch_size)
    parser.add_argument("--seq-len", type=int, default=train.seq_len)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per case per round")
    parser.add_argument(
        "--kernels", nargs="+", choices=["native", "onednn"], default=["native", "onednn"],
        help="CPU recurrent kernels to time (native is very slow in bf16 at large sizes)",
    )  # fmt: skip
    args = parser.parse_args()

    device = torch.device(args.device)
    corpus = prepare_corpus("shakespeare")
    vocab = corpus.tokenizer.vocab_size
    precisions = ["fp32"] + (["bf16"] if bf16_supported(device) else [])
    kernels = [None] if device.type != "cpu" else [k == "onednn" for k in args.kernels]
    cases: dict[str, tuple[Callable, bool | None]] = {}
    for precision in precisions:
        for kernel in kernels:
            where = "" if kernel is None else (", oneDNN" if kernel else ", native")
            plain = plain_step_fn(args, vocab, device, precision)
            trainer = trainer_step_fn(args, corpus, device, precision)
            cases[f"plain loop, {precision}{where}"] = (plain, kernel)
            cases[f"Trainer,    {precision}{where}"] = (trainer, kernel)
    batches = _batches(corpus, args)
    seconds: dict[str, list[float]] = {name: [] for name in cases}
    for round_index in range(args.rounds + 1):  # round 0 warms up
        for name, (step, kernel) in cases.items():
            with cpu_kernel(kernel):
                for _ in range(args.steps):
                    x, y = next(batches)
                    if device.type == "cuda":
                        torch.cuda.synchronize()
                    start = time.perf_counter()
                    step(x, y)
                    if device.type == "cuda":
                        torch.cuda.synchronize()
                    if round_index:
                        seconds[name].append(time.perf_counter() - start)

    tokens = args.batch_size * args.seq_len
    flops = training_flops_per_token(args, vocab)
    peaks = {
        p: matmul_peak(device, torch.float32 if p == "fp32" else torch.bfloat16) for p in precisions
    }
    print(
        f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, device {device}"
    )
    print(
        f"model {args.num_layers}x{args.hidden_size} (embed {args.embed_dim}, dropout "
        f"{args.dropout}), batch {args.batch_size}x{args.seq_len}; medians of "
        f"{args.rounds}x{args.steps} steps, cases interleaved"
    )
    for precision in precisions:
        print(f"matmul peak {precision}: {peaks[precision] / 1e9:,.1f} GFLOP/s")
    rates = {name: tokens / statistics.median(times) for name, times in seconds.items()}
    best_plain = max(r for n, r in rates.items() if n.startswith("plain"))
    for name, rate in rates.items():
        precision = "bf16" if "bf16" in name else "fp32"
        mfu = rate * flops / peaks[precision]
        print(
            f"{name:28s} {rate:10,.0f} tokens/s  {rate / best_plain:5.2f}x best plain  "
            f"MFU {mfu:6.1%}"
        )
    for precision in precisions:
        for kernel in kernels:
            where = "" if kernel is None else (", oneDNN" if kernel else ", native")
            ratio = (
                rates[f"Trainer,    {precision}{where}"] / rates[f"plain loop, {precision}{where}"]
            )
            print(f"Trainer / plain loop, {precision}{where}: {ratio:.3f}")
    if args.dropout > 0:
        for precision in precisions:
            torch_ms, textgen_ms = dropout_times(args, device, precision)
            print(
                f"dropout on {args.batch_size}x{args.seq_len}x{args.hidden_size} {precision}: "
                f"F.dropout {torch_ms:.2f} ms, textgen.dropout {textgen_ms:.2f} ms "
                f"({torch_ms / textgen_ms:.2f}x)"
            )


def dropout_times(args, device: torch.device, precision: str) -> tuple[float, float]:
    """Median milliseconds of one dropout call, F.dropout's and textgen's, interleaved."""
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    x = torch.randn(args.batch_size, args.seq_len, args.hidden_size, device=device, dtype=dtype)
    calls = {
        "torch": lambda: F.dropout(x, args.dropout),
        "textgen": lambda: dropout(x, args.dropout),
    }
    times: dict[str, list[float]] = {name: [] for name in calls}
    for round_index in range(12):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            if device.type == "cuda":
                torch.cuda.synchronize()
            if round_index >= 2:
                times[name].append(time.perf_counter() - start)
    return 1e3 * statistics.median(times["torch"]), 1e3 * statistics.median(times["textgen"])


def _batches(corpus, args):
    batcher = StreamBatcher(corpus.train.ids, args.batch_size, args.seq_len)
    while True:
        yield from batcher.iter_epoch()


if __name__ == "__main__":
    main()
