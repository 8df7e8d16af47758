"""Pretrained models shipped in the wheel, addressable by name wherever a checkpoint is.

``textgen generate shakespeare``, ``load_checkpoint("shakespeare")``,
``Sampler.from_checkpoint("shakespeare")`` and ``textgen train DATA --init-from shakespeare``
all find the file here (package data, read through `importlib.resources`). A path that exists
always wins over a name. Each ``NAME.pt`` is an ordinary checkpoint (weights stored in
bfloat16, tokenizer, metadata) made by ``scripts/train_pretrained.py``; ``NAME.json`` records
how (command, training time, held-out loss).
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

_MODELS: dict[str, str] = {
    # name -> file in this folder
    "shakespeare": "shakespeare.pt",
}


def available_pretrained() -> list[str]:
    """Names of the bundled pretrained models, sorted."""
    return sorted(_MODELS)


def is_pretrained_name(name: str) -> bool:
    """True when ``name`` names a bundled pretrained model."""
    return name in _MODELS


def pretrained_path(name: str) -> Path:
    """Path of a bundled model's checkpoint file.

    Raises:
        ValueError: ``name`` is not a bundled model.
        FileNotFoundError: the file is missing from this installation.
    """
    if name not in _MODELS:
        raise ValueError(
            f"unknown pretrained model {name!r}; bundled: {', '.join(available_pretrained())}"
        )
    path = Path(str(resources.files(__name__) / _MODELS[name]))
    if not path.is_file():  # pragma: no cover - a broken install
        raise FileNotFoundError(f"pretrained model file {path} is missing; reinstall textgen")
    return path


def pretrained_record(name: str) -> dict[str, Any]:
    """How a bundled model was made: its ``NAME.json`` (command, time, held-out loss, ...)."""
    path = pretrained_path(name).with_suffix(".json")
    record: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return record


__all__ = ["available_pretrained", "is_pretrained_name", "pretrained_path", "pretrained_record"]
