"""Checkpoints: one self-contained, safe, device-neutral file per saved model.

A checkpoint holds everything needed to sample (model config, weights, tokenizer JSON) and, for
``last.pt``, everything needed to resume training exactly (``train_state``: optimizer, scheduler,
scaler, step, epoch, data cursor, carried hidden state, best validation loss, RNG states).

Files are written with `torch.save` and read with ``torch.load(weights_only=True)``: a checkpoint
is data, never code, so a file carrying pickled objects is refused before anything runs. Tensors
are stored on the CPU, so a CUDA-trained checkpoint loads anywhere. Writes go to a temporary file
in the same folder and are renamed into place, so a crash at any moment leaves the previous
checkpoint intact.
"""

from __future__ import annotations

import json
import pickle
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from textgen.atomic import atomic_write
from textgen.model import LSTMLanguageModel, ModelConfig
from textgen.pretrained import available_pretrained, is_pretrained_name, pretrained_path
from textgen.tokenizers import Tokenizer, tokenizer_from_dict

CHECKPOINT_FORMAT = "textgen-checkpoint"
CHECKPOINT_FORMAT_VERSION = 1
_REQUIRED_KEYS = ("format", "format_version", "model_config", "model_state", "tokenizer")


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable, unsafe, from another version, or incomplete."""


@dataclass
class Checkpoint:
    """The contents of a checkpoint file.

    Attributes:
        model_config: ``dataclasses.asdict(ModelConfig)``; rebuild with ``ModelConfig(**d)``.
        model_state: the model's ``state_dict`` (CPU tensors unless loaded with a map_location).
        tokenizer: the fitted tokenizer the model was trained with.
        train_state: full training state for resuming (None in weights-only checkpoints).
        metadata: free-form plain values (step, best validation loss, train config, version).
        path: the file it was read from, when it was read from one.
    """

    model_config: dict[str, Any]
    model_state: dict[str, torch.Tensor]
    tokenizer: Tokenizer
    train_state: dict[str, Any] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    def build_model(self, device: str | torch.device | None = None) -> LSTMLanguageModel:
        """A `LSTMLanguageModel` with these weights, in eval mode, on ``device`` (default CPU).

        Raises:
            CheckpointError: the stored config or weights do not fit the model class.
        """
        try:
            model = LSTMLanguageModel(ModelConfig(**self.model_config))
            model.load_state_dict(self.model_state)
        except (TypeError, ValueError, RuntimeError) as error:
            raise CheckpointError(
                f"{self.path}: cannot rebuild the model: {_mismatch(error)}"
            ) from None
        model.eval()
        if device is not None:
            model.to(device)
        return model


def run_checkpoints(run_dir: str | Path) -> list[Path]:
    """The checkpoint files of a run folder: ``last.pt``, ``best.pt``, ``step-*.pt`` that exist.

    A folder holding any of them holds a run that training must not replace by accident.
    """
    run_dir = Path(run_dir)
    named = [run_dir / "last.pt", run_dir / "best.pt"]
    return [p for p in named if p.is_file()] + sorted(run_dir.glob("step-*.pt"))


def resolve_checkpoint_path(path: str | Path) -> Path:
    """A run folder means its ``best.pt`` (or ``last.pt`` when no best exists yet); a file is
    itself; a name such as ``"shakespeare"`` that is no path here means that bundled pretrained
    model (`textgen.pretrained`).

    Raises:
        CheckpointError: nothing usable exists at ``path``.
    """
    if isinstance(path, str) and not Path(path).exists() and is_pretrained_name(path):
        return pretrained_path(path)
    path = Path(path)
    if path.is_dir():
        for name in ("best.pt", "last.pt"):
            if (path / name).is_file():
                return path / name
        raise CheckpointError(f"run folder {path} holds no best.pt or last.pt")
    if not path.is_file():
        raise CheckpointError(
            f"checkpoint {path} does not exist (not a file, a run folder or a pretrained model "
            f"name; bundled: {', '.join(available_pretrained())})"
        )
    return path


def save_checkpoint(
    path: str | Path,
    *,
    model: LSTMLanguageModel,
    tokenizer: Tokenizer,
    train_state: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint atomically (temporary file + rename) and return its path.

    Args:
        path: destination file; its folder is created if needed.
        model: a model with a ``config`` dataclass attribute (`LSTMLanguageModel`).
        tokenizer: the fitted tokenizer.
        train_state: optional resumable training state (plain values and tensors only).
        metadata: optional plain values stored alongside.

    Raises:
        CheckpointError: a weight is NaN or infinite (a broken model is never saved).
        StorageError: the file could not be written (disk full, no permission); the message
            names it, the previous file at ``path`` is intact and no temporary file is left.
    """
    path = Path(path)
    model_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    bad = [
        k for k, v in model_state.items() if v.is_floating_point() and not torch.isfinite(v).all()
    ]
    if bad:
        raise CheckpointError(
            f"refusing to write {path}: non-finite values in {', '.join(bad[:5])}"
        )
    payload: dict[str, Any] = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_FORMAT_VERSION,
        "model_config": asdict(model.config),
        "model_state": model_state,
        "tokenizer": tokenizer.to_json(),
        "train_state": _to_cpu(train_state) if train_state is not None else None,
        "metadata": dict(metadata or {}),
    }
    atomic_write(path, lambda file: torch.save(payload, file), what="checkpoint")
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Read a checkpoint safely (``weights_only=True``: no code from the file ever runs).

    Args:
        path: a checkpoint file, a run folder (meaning its ``best.pt``) or the name of a
            bundled pretrained model such as ``"shakespeare"``.
        map_location: where tensors go; the default CPU works for checkpoints from any device.

    Raises:
        CheckpointError: the file is missing, truncated, not a checkpoint, carries pickled code,
            has an unknown format version, or lacks a required key. The message names the path.
    """
    path = resolve_checkpoint_path(path)
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive; anything else is not ours
        raise CheckpointError(f"{path} is not a checkpoint (not a torch file, or truncated)")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        raise CheckpointError(
            f"{path} is not a safe textgen checkpoint (it holds objects other than tensors "
            f"and plain values, so it was refused without running them): {_first_line(error)}"
        ) from None
    except Exception as error:  # torch raises many kinds on damaged files (KeyError, ...)
        raise CheckpointError(
            f"{path} could not be read as a checkpoint (truncated or not a torch file): "
            f"{_first_line(error)}"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a textgen checkpoint")
    version = payload.get("format_version")
    if version != CHECKPOINT_FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format version {version!r}; this textgen reads version "
            f"{CHECKPOINT_FORMAT_VERSION}"
        )
    missing = [key for key in _REQUIRED_KEYS if key not in payload]
    if missing:
        raise CheckpointError(f"{path} is missing required key(s): {', '.join(missing)}")
    try:
        tokenizer = tokenizer_from_dict(_json_loads(payload["tokenizer"]))
    except ValueError as error:
        raise CheckpointError(f"{path} has an invalid tokenizer: {error}") from None
    return Checkpoint(
        model_config=dict(payload["model_config"]),
        model_state=payload["model_state"],
        tokenizer=tokenizer,
        train_state=payload.get("train_state"),
        metadata=dict(payload.get("metadata") or {}),
        path=path,
    )


def _to_cpu(value: Any) -> Any:
    """Move every tensor in a nested structure to the CPU (device-neutral checkpoints)."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_cpu(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_to_cpu(v) for v in value)
    return value


def _json_loads(text: Any) -> Any:
    if not isinstance(text, str):
        raise ValueError("tokenizer entry is not a JSON string")
    return json.loads(text)


def _mismatch(error: BaseException) -> str:
    """One line of a `load_state_dict` error: its first problem and how many more there are
    (torch lists every mismatched tensor on a line of its own)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if len(lines) <= 1:
        return lines[0] if lines else type(error).__name__
    more = f" (and {len(lines) - 2} more)" if len(lines) > 2 else ""
    return f"{lines[1].rstrip('.')}{more}; the weights do not fit the stored model config"


def _first_line(error: BaseException) -> str:
    """The first sentence of an error: torch's own messages run to paragraphs."""
    lines = str(error).strip().splitlines()
    return lines[0].split(". ")[0] if lines else type(error).__name__
