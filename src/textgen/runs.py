"""A training run from its settings: what ``textgen train`` does, as two library calls.

`plan_run` turns the three tables of a run configuration (``data``, ``model``, ``train``: field
name -> value, from a ``--config`` file, flags or Python) into checked configs before any data
is read. For a new run it refuses a folder that already holds one; for a resumed run it starts
from the run's saved settings and refuses what its checkpoint fixes (the model's shape, the
tokenizer, and the training settings in `FIXED_ON_RESUME`). A fine-tuning run (``init_from``)
is a new run that takes the model's shape, weights and tokenizer from a trained model
(`textgen.finetune`). `build_trainer` then prepares the corpus, builds the model and returns the
`Trainer`; ``trainer.fit(resume=plan.resume)`` runs it.

Example:
    >>> plan = plan_run({"train": {"out_dir": "runs/x", "max_steps": 10}})  # doctest: +SKIP
    >>> build_trainer(plan).fit()                                            # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textgen import distributed
from textgen.callbacks import Callback
from textgen.checkpoint import Checkpoint, load_checkpoint
from textgen.data import DataConfig
from textgen.finetune import check_model_changes, extended_tokenizer, finetune_model
from textgen.lockfile import RunLock
from textgen.model import LSTMLanguageModel, ModelConfig
from textgen.resume import check_world_size
from textgen.run_config import load_run_data, save_run_data
from textgen.run_folder import RunFolder
from textgen.runtime import check_precision, resolve_device, resolve_precision, seed_everything
from textgen.tokenizers import Tokenizer
from textgen.train_config import TrainConfig, resume_config
from textgen.trainer import Trainer
from textgen.validation import InvalidValueError

#: Data settings that describe the tokenizer: a resumed run's are fixed by its checkpoint.
TOKENIZER_SETTINGS = ("tokenizer", "vocab_size", "min_freq", "unknown")


@dataclass(frozen=True)
class RunPlan:
    """A checked run, ready to build.

    Attributes:
        data: where the text comes from and how it is tokenized.
        model: `ModelConfig` fields; ``vocab_size`` is added from the tokenizer when missing.
        train: how to train.
        resume: continue the run in ``train.out_dir`` from its ``last.pt``.
        tokenizer: the resumed run's fitted tokenizer (None for a new run: fitted on the data).
        source: the model a fine-tuning run starts from (``init_from``), else None.
    """

    data: DataConfig
    model: Mapping[str, Any]
    train: TrainConfig
    resume: bool = False
    tokenizer: Tokenizer | None = None
    source: Checkpoint | None = None


def plan_run(
    settings: Mapping[str, Mapping[str, Any]],
    *,
    resume: bool = False,
    init_from: str | Path | None = None,
) -> RunPlan:
    """Check a run's settings before any data is read.

    Args:
        settings: ``{"data": {...}, "model": {...}, "train": {...}}``, any table may be missing
            or partial; missing fields take their defaults (new run) or the run's saved values
            (``resume``).
        resume: continue the run in ``train.out_dir``.
        init_from: fine-tune: a new run starting from this checkpoint file, run folder (its
            best.pt) or pretrained model name (such as ``"shakespeare"``). Its model shape,
            weights and tokenizer are used (new symbols in the data extend the vocabulary
            unless ``data.unknown="unk"``); it is only read, never written.

    Raises:
        ValueError / TypeError: a bad setting (naming it); the run folder already holds a run
            (new run without ``overwrite``); a resumed run given a different model, tokenizer
            or fixed training setting, or launched with another number of processes; the
            device or precision is unavailable.
        CheckpointError: ``resume`` and the run's ``last.pt`` is missing or unreadable, or
            ``init_from`` names nothing readable.
        RunFolderBusyError: another process is training into ``train.out_dir``.
    """
    data_given = dict(settings.get("data", {}))
    model_given = dict(settings.get("model", {}))
    train_given = dict(settings.get("train", {}))
    out = Path(train_given.get("out_dir", TrainConfig().out_dir))
    if out.exists() and not out.is_dir():
        raise InvalidValueError(
            "out_dir", f"out_dir {out} is a file, not a folder; give a folder for the run"
        )
    if distributed.launch_rank() == 0:  # under torchrun, rank 0 alone writes (and locks)
        RunLock(out).check()  # a folder another run is writing into is refused before any work
    if init_from is not None:
        if resume:
            raise InvalidValueError(
                "init_from",
                "init_from starts a new run from a trained model and resume continues a run; "
                "give one of them",
            )
        plan = _plan_finetuning(init_from, data_given, model_given, train_given, out)
    elif not resume:
        train = TrainConfig.from_dict(train_given)
        ModelConfig(vocab_size=2, **model_given)  # check the model's settings now
        if not train.overwrite:
            RunFolder(out, progress=False).refuse_existing_run()
        plan = RunPlan(DataConfig(**data_given), model_given, train)
    else:
        checkpoint = load_checkpoint(out / "last.pt")
        if checkpoint.train_state is not None:  # same number of processes, or refused now
            batch_size = (checkpoint.metadata.get("train_config") or {}).get("batch_size", 0)
            check_world_size(
                checkpoint.train_state, distributed.launch_world_size(), batch_size, str(out)
            )
        saved_data = _saved_data(out, data_given, checkpoint.tokenizer.kind)
        _refuse_shape_changes(model_given, checkpoint.model_config, data_given, saved_data)
        data = dataclasses.replace(saved_data, **data_given)
        # The run folder, the progress bar and overwriting belong to this invocation only.
        now = {"out_dir": str(out), "progress": True, "overwrite": False, **train_given}
        train = resume_config(checkpoint.metadata.get("train_config") or {}, now)
        plan = RunPlan(data, checkpoint.model_config, train, True, checkpoint.tokenizer)
    device = resolve_device(plan.train.device)
    check_precision(resolve_precision(plan.train.precision, device), device)
    return plan


def build_trainer(plan: RunPlan, *, callbacks: Sequence[Callback] = ()) -> Trainer:
    """Prepare the corpus, build the model (seeded by ``train.seed``) and return the Trainer.

    A new run's ``data.json`` is written into the run folder, so a resume reads the same text.
    Under ``torchrun`` the process group is joined first; the tokenizer is fitted and the text
    encoded once per machine (local rank 0; the other ranks then read its cache), and only
    rank 0 writes ``data.json``.
    """
    tokenizer = plan.tokenizer
    if plan.source is not None:
        tokenizer, _ = extended_tokenizer(
            plan.source.tokenizer,
            plan.data.text_chunks(),
            documents=plan.data.documents != "none",
            keep_vocabulary=plan.data.unknown == "unk",
        )
    distributed.setup(plan.train.device)
    corpus = distributed.main_first(lambda: plan.data.prepare(tokenizer), local=True)
    seed_everything(plan.train.seed)  # the seed decides the initial weights too
    if plan.source is not None:
        changes = {k: v for k, v in plan.model.items() if k != "vocab_size"}
        model = finetune_model(plan.source, corpus.tokenizer, **changes)
    else:
        model_config = ModelConfig(**{"vocab_size": corpus.tokenizer.vocab_size, **plan.model})
        model = LSTMLanguageModel(model_config)
    trainer = Trainer(model, corpus, plan.train, callbacks=callbacks)
    if not plan.resume:
        out = Path(plan.train.out_dir)
        distributed.on_main(lambda: _write_run_data(out, plan.data))
    return trainer


def _write_run_data(out: Path, data: DataConfig) -> None:
    RunLock(out).check()
    out.mkdir(parents=True, exist_ok=True)
    save_run_data(out, data)


def _plan_finetuning(
    init_from: str | Path,
    data_given: dict[str, Any],
    model_given: dict[str, Any],
    train_given: dict[str, Any],
    out: Path,
) -> RunPlan:
    """A new run whose model and tokenizer come from ``init_from`` (see `plan_run`)."""
    source = load_checkpoint(init_from)
    kind = source.tokenizer.kind
    given = [k for k in TOKENIZER_SETTINGS if k in data_given and k != "unknown"]
    if [k for k in given if k != "tokenizer" or data_given[k] != kind]:
        raise InvalidValueError(
            tuple(given),
            f"cannot set {', '.join(given)} when fine-tuning: the tokenizer is the source's "
            f"({kind}); only unknown='unk' (keep its vocabulary) may be given",
        )
    data = DataConfig(**{**data_given, "tokenizer": kind})
    model = check_model_changes(model_given, source.model_config)
    train = TrainConfig.from_dict(train_given)
    assert source.path is not None
    if source.path.parent.resolve() == out.resolve():
        raise InvalidValueError(
            "out_dir",
            f"{out} is the folder of the model being fine-tuned, which is never written; "
            "give the new run another out_dir (--out)",
        )
    if not train.overwrite:
        RunFolder(out, progress=False).refuse_existing_run()
    return RunPlan(data, model, train, tokenizer=source.tokenizer, source=source)


def _saved_data(out: Path, given: dict[str, Any], tokenizer_kind: str) -> DataConfig:
    """The data settings of the run being resumed (its ``data.json``)."""
    saved = load_run_data(out)
    if saved is None and "sources" not in given:
        raise InvalidValueError(
            ("sources", "val_files", "val_fraction"),
            f"{out} has no data.json saying what text it was trained on (a run made from "
            "Python?); give the same text again (and the same val_files or val_fraction)",
        )
    return saved or DataConfig(tokenizer=tokenizer_kind)


def _refuse_shape_changes(
    model_given: dict[str, Any],
    model_saved: dict[str, Any],
    data_given: dict[str, Any],
    data: DataConfig,
) -> None:
    """A resumed run's model and tokenizer are in its checkpoint: refuse settings that change
    them (giving the same value again is fine)."""
    changed = [k for k, v in model_given.items() if model_saved.get(k) != v]
    changed += [k for k in TOKENIZER_SETTINGS if k in data_given and data_given[k] != getattr(data, k)]  # fmt: skip
    if changed:
        raise InvalidValueError(
            tuple(changed),
            f"cannot change {', '.join(changed)} when resuming: the model and tokenizer are "
            "those of the run's last.pt; start a new run (another out_dir, or overwrite) to "
            "change them",
        )


__all__ = ["TOKENIZER_SETTINGS", "RunPlan", "build_trainer", "plan_run"]
