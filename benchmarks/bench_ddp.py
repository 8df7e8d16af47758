"""Distributed training throughput: global tokens/s of 1 process against N under DDP (by hand).

Each case starts its processes the way ``torchrun`` does (one per rank, environment variables
``WORLD_SIZE``/``RANK``/``LOCAL_RANK``, a TCP rendezvous on this machine) and runs the real
`Trainer` on the bundled Shakespeare corpus with ``--batch-size`` rows per process (weak
scaling: N processes train on N times the rows per step). Gloo on the CPU, NCCL with
``--device cuda`` (one GPU per process). After ``--warmup`` steps, rank 0 times ``--steps``
optimizer steps, each including the gradient all-reduce; the global tokens/s of each case and
its speed-up over one process are printed, with the machine and the threads per process.

    python benchmarks/bench_ddp.py                               # 1 vs 2 CPU processes
    python benchmarks/bench_ddp.py --threads 2 --hidden-size 512
    python benchmarks/bench_ddp.py --device cuda --processes 1 2 4 8 --batch-size 64
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import tempfile
import time
from pathlib import Path

import torch
import torch.multiprocessing as mp

from textgen import LSTMLanguageModel, ModelConfig, TrainConfig, Trainer, prepare_corpus
from textgen.distributed import shutdown


def rank_main(rank: int, world_size: int, port: int, args: argparse.Namespace, out: str) -> None:
    """One process of a case: the Trainer under DDP; rank 0 writes the timing to ``out``."""
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        WORLD_SIZE=str(world_size),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(args.threads)
    corpus = prepare_corpus("shakespeare")
    torch.manual_seed(0)
    model = LSTMLanguageModel(
        ModelConfig(
            vocab_size=corpus.tokenizer.vocab_size,
            embed_dim=args.embed_dim,
            hidden_size=args.hidden_size,
            num_layers=args.num_layers,
        )
    )
    with tempfile.TemporaryDirectory() as folder:
        config = TrainConfig(
            out_dir=folder,
            batch_size=args.batch_size,
            seq_len=args.seq_len,
            max_steps=args.warmup + args.steps,
            eval_every=10**9,  # no validation inside the timed steps
            schedule="constant",
            device=args.device,
            precision=args.precision,
            progress=False,
            overwrite=True,
        )
        trainer = Trainer(model, corpus, config)  # joins the group (textgen.distributed.setup)
        batches = iter(trainer.batcher)
        for _ in range(args.warmup):
            trainer.train_step(*next(batches))
        _synchronize(trainer.device)
        start = time.perf_counter()
        for _ in range(args.steps):
            trainer.train_step(*next(batches))  # reads the all-reduced loss: ranks in step
        _synchronize(trainer.device)
        seconds = time.perf_counter() - start
        tokens = args.steps * args.batch_size * args.seq_len * world_size
        if rank == 0:
            Path(out).write_text(json.dumps({"tokens_per_s": tokens / seconds}))
    shutdown()


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def free_port() -> int:
    with socket.socket() as handle:
        handle.bind(("127.0.0.1", 0))
        return int(handle.getsockname()[1])


def run_case(world_size: int, args: argparse.Namespace) -> float:
    with tempfile.TemporaryDirectory() as folder:
        out = str(Path(folder) / "result.json")
        mp.spawn(rank_main, args=(world_size, free_port(), args, out), nprocs=world_size)
        return float(json.loads(Path(out).read_text())["tokens_per_s"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--device", default="cpu", help="cpu (Gloo) or cuda (NCCL)")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--embed-dim", type=int, default=64)
    parser.add_argument("--hidden-size", type=int, default=256)
    parser.add_argument("--num-layers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16, help="rows per process")
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    prepare_corpus("shakespeare")  # encode (and cache) once, before the processes start
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs")
    print(f"torch {torch.__version__}, device {args.device}, {args.threads} thread(s)/process")
    print(
        f"model: {args.num_layers}x{args.hidden_size} LSTM, {args.batch_size} rows x "
        f"{args.seq_len} tokens per process, {args.steps} timed steps"
    )
    baseline = None
    for world_size in args.processes:
        speed = run_case(world_size, args)
        baseline = baseline or speed
        print(
            f"{world_size} process(es): {speed:10,.0f} global tokens/s   "
            f"x{speed / baseline:.2f} of {args.processes[0]}"
        )


if __name__ == "__main__":
    main()
