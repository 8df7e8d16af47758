"""Interrupt a training run, resume it, and check it ends bit for bit where an unbroken run does.

    python examples/resume_training.py

Three runs of the same length from the same seed: (A) uninterrupted; (B) stopped half way by a
callback that sets ``trainer.should_stop`` (exactly what Ctrl-C does: ``last.pt`` is written
and the run returns); (C) a fresh Trainer on B's folder with ``fit(resume=True)``. On CPU the
weights of A and C are identical, not merely close: the checkpoint carries the optimizer,
schedule, data position, hidden state and every random number generator.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import torch

from textgen import (
    Callback,
    LSTMLanguageModel,
    ModelConfig,
    TrainConfig,
    Trainer,
    load_checkpoint,
    prepare_corpus,
)


class StopAt(Callback):
    """Ask the trainer to stop cleanly after a given step, as an interruption would."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        if metrics["step"] == self.step:
            trainer.should_stop = True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=None, help="folder for the runs (default: a temp dir)")
    parser.add_argument("--device", default="cpu", help="bitwise equality is promised on CPU")
    parser.add_argument("--hidden-size", type=int, default=128)
    parser.add_argument("--max-steps", type=int, default=120)
    parser.add_argument("--eval-every", type=int, default=40)
    args = parser.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="textgen-resume-"))

    corpus = prepare_corpus("shakespeare", val_fraction=0.02)
    model_config = ModelConfig(
        vocab_size=corpus.tokenizer.vocab_size,
        embed_dim=32,
        hidden_size=args.hidden_size,
        num_layers=2,
        dropout=0.1,  # dropout draws random numbers: resuming must restore the RNGs too
    )

    def trainer(folder: str, *callbacks: Callback) -> Trainer:
        config = TrainConfig(
            out_dir=str(out / folder),
            batch_size=16,
            seq_len=64,
            max_steps=args.max_steps,
            eval_every=args.eval_every,
            eval_batches=5,
            device=args.device,
            seed=1234,
            progress=False,
        )
        # The Trainer seeds every RNG from config.seed before the model is used; building the
        # model after seeding keeps the initial weights identical across the three runs.
        torch.manual_seed(config.seed)
        return Trainer(LSTMLanguageModel(model_config), corpus, config, callbacks=callbacks)

    print(f"A: {args.max_steps} steps without interruption")
    full = trainer("uninterrupted")
    full.fit()

    stop_step = args.max_steps // 2 + 3  # deliberately between two validations
    print(f"B: the same run, stopped after step {stop_step}")
    interrupted = trainer("interrupted", StopAt(stop_step))
    result = interrupted.fit()
    saved = load_checkpoint(out / "interrupted" / "last.pt")
    print(f"   stopped by {result.stopped_by!r}; last.pt holds step {saved.metadata['step']}")

    print("C: a new Trainer resumes B from last.pt")
    resumed = trainer("interrupted")
    result = resumed.fit(resume=True)
    print(f"   finished at step {result.step}")

    a, c = full.model.state_dict(), resumed.model.state_dict()
    identical = all(torch.equal(a[name], c[name]) for name in a)
    print(f"weights of A and C bitwise identical: {identical}")
    if not identical:
        raise SystemExit("resume did not reproduce the uninterrupted run")


if __name__ == "__main__":
    main()
