"""The body of each process of the 2-process Gloo tests (tests/test_distributed.py).

`spawn_ranks` starts ``world_size`` processes that each join a Gloo group on the CPU (as
``torchrun`` would set them up) and run `scenario`: a few small training runs in one group,
so the cost of starting processes is paid once. Each rank writes what it saw to
``results/rank-N.json``; the test reads those and the run folders.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from textgen import distributed, run_folder
from textgen.callbacks import Callback
from textgen.data import prepare_corpus
from textgen.model import LSTMLanguageModel, ModelConfig
from textgen.trainer import TrainConfig, Trainer, TrainingDivergedError

TEXT = "the quick brown fox jumps over the lazy dog.\n" * 40

#: the settings every run of the tests shares; 2 ranks of batch 2 = one process of batch 4
SETTINGS: dict[str, Any] = dict(
    seq_len=16,
    max_steps=12,
    eval_every=4,
    log_every=1,
    lr=1e-2,
    schedule="constant",
    warmup_steps=0,
    device="cpu",
    precision="fp32",
    progress=False,
    seed=0,
)


def corpus_of(root: Path):
    path = root / "text.txt"
    if not path.exists():
        path.write_text(TEXT, encoding="utf-8")
    return prepare_corpus([path], val_fraction=0.2, cache_dir=root / "cache")


def small_model(corpus, dropout: float = 0.0, seed: int = 0) -> LSTMLanguageModel:
    torch.manual_seed(seed)
    config = ModelConfig(
        vocab_size=corpus.tokenizer.vocab_size,
        embed_dim=16,
        hidden_size=32,
        num_layers=2,
        dropout=dropout,
    )
    return LSTMLanguageModel(config)


def train_config(out: Path, **overrides: Any) -> TrainConfig:
    return TrainConfig(out_dir=str(out), **{**SETTINGS, **overrides})


class StopAt(Callback):
    """Ask for a stop at ``step`` (on the ranks it is given to)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        if metrics["step"] == self.step:
            trainer.request_stop()


class PoisonRank(Callback):
    """From ``step`` on, the model returns NaN logits on this rank: every loss turns NaN."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        if metrics["step"] == self.step:
            trainer.model.head.register_forward_hook(lambda module, args, out: out * torch.nan)


def scenario(rank: int, world_size: int, port: int, root: str) -> None:
    """What each rank does: see the test module for what is checked."""
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        WORLD_SIZE=str(world_size),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(1)
    # The test's own group, with a short timeout: a bug that leaves a rank waiting fails the
    # test in a minute instead of hanging it. The Trainer joins it and leaves it to us.
    dist.init_process_group("gloo", timeout=timedelta(seconds=60))
    base = Path(root)
    seen: dict[str, Any] = {}
    if rank > 0:  # only rank 0 may write checkpoints
        run_folder.save_checkpoint = _refuse_write  # type: ignore[assignment]
    try:
        corpus = distributed.main_first(lambda: corpus_of(base))
        for batching in ("stream", "random"):
            out = base / f"{batching}-2"
            trainer = Trainer(
                small_model(corpus), corpus, train_config(out, batch_size=2, batching=batching)
            )
            result = trainer.fit()
            seen[batching] = {"step": result.step, "best_val_loss": result.best_val_loss}

        # Exact resume: an uninterrupted run, and one stopped by rank 1 alone at step 5.
        dropout = dict(batch_size=2, max_steps=12, eval_every=8)
        straight = Trainer(
            small_model(corpus, 0.3), corpus, train_config(base / "straight", **dropout)
        )
        straight.fit()
        callbacks = [StopAt(5)] if rank == 1 else []
        first = Trainer(
            small_model(corpus, 0.3),
            corpus,
            train_config(base / "resumed", **dropout),
            callbacks=callbacks,
        )
        seen["first_stop"] = first.fit().stopped_by
        torch.manual_seed(1234 + rank)  # a fresh process: other weights and RNG states
        resumed = Trainer(
            small_model(corpus, 0.3, seed=99), corpus, train_config(base / "resumed", **dropout)
        )
        seen["resumed_step"] = resumed.fit(resume=True).step
        seen["resumed_equal"] = all(
            torch.equal(a, b)
            for a, b in zip(
                straight.model.state_dict().values(),
                resumed.model.state_dict().values(),
                strict=True,
            )
        )

        # A NaN on rank 1 alone: both ranks roll back together, then both give up.
        poisoned = Trainer(
            small_model(corpus),
            corpus,
            train_config(base / "nan", batch_size=2, max_nan_retries=2),
            callbacks=[PoisonRank(3)] if rank == 1 else [],
        )
        try:
            poisoned.fit()
            seen["nan"] = None
        except TrainingDivergedError as error:
            seen["nan"] = str(error)
        seen["world_size"] = distributed.world_size()

        # An error on rank 0 in a step only rank 0 takes (writing a file) stops both ranks.
        try:
            distributed.on_main(_disk_full)
        except Exception as error:
            seen["on_main"] = f"{type(error).__name__}: {error}"
        dist.barrier()  # neither rank leaves the group while the other still talks to it
    finally:
        (base / "results").mkdir(exist_ok=True)
        (base / "results" / f"rank-{rank}.json").write_text(json.dumps(seen))
        dist.destroy_process_group()


def _disk_full() -> None:
    raise OSError("No space left on device")


def _refuse_write(path: Any, **contents: Any) -> Path:
    raise AssertionError(f"rank {dist.get_rank()} wrote {path}")


def free_port() -> int:
    with socket.socket() as handle:
        handle.bind(("127.0.0.1", 0))
        return int(handle.getsockname()[1])


def spawn_ranks(root: Path, world_size: int = 2) -> list[dict[str, Any]]:
    """Run `scenario` in ``world_size`` fresh processes; returns what each rank saw."""
    mp.spawn(scenario, args=(world_size, free_port(), str(root)), nprocs=world_size, join=True)
    return [
        json.loads((root / "results" / f"rank-{r}.json").read_text()) for r in range(world_size)
    ]


if __name__ == "__main__":  # by hand: python tests/_distributed_worker.py /tmp/somewhere
    print(spawn_ranks(Path(sys.argv[1])))
