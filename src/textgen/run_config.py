"""Run configuration files: one TOML or JSON file that says how a run was (or is to be) made.

A run configuration has up to three tables, one per config dataclass: ``[data]``
(`DataConfig`), ``[model]`` (`ModelConfig` without ``vocab_size``, which the tokenizer decides)
and ``[train]`` (`TrainConfig`). ``textgen train --config run.toml`` reads one (flags given on
the command line override it) and ``textgen info RUN --config`` writes the one that reproduces a
run. Keys are the dataclasses' field names; a key no dataclass has is an error naming the file,
the table and the closest known key. TOML has no null: the string ``"none"`` stands for None.

Example ``run.toml``::

    [data]
    sources = ["shakespeare"]
    tokenizer = "char"

    [model]
    hidden_size = 512

    [train]
    max_steps = 5000
    clip_norm = "none"
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from textgen.atomic import atomic_write_text
from textgen.checkpoint import Checkpoint
from textgen.data import DataConfig
from textgen.model import ModelConfig
from textgen.options import config_from_dict, describe
from textgen.train_config import TrainConfig
from textgen.validation import InvalidValueError

#: Table name -> the config dataclass it fills.
SECTIONS: dict[str, type] = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig}
#: Fields a run file never sets: decided by the data (``vocab_size``).
_DERIVED = {"model": ("vocab_size",)}


def read_run_config(path: str | Path) -> dict[str, dict[str, Any]]:
    """Read and check a ``.toml`` or ``.json`` run configuration.

    Returns:
        Table name -> field name -> value, for the tables present; values are checked by
        building each dataclass (``[model]`` with a stand-in vocabulary size).

    Raises:
        FileNotFoundError: no such file.
        ValueError: not valid TOML/JSON, an unknown table or key, or a bad value (the message
            names the file and table).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"run configuration {path} does not exist")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix == ".toml":
            raw = _toml_loads(text)
        elif path.suffix == ".json":
            raw = json.loads(text)
        else:
            raise InvalidValueError("config", f"{path}: expected a .toml or .json file")
    except ValueError as error:  # tomllib.TOMLDecodeError and json errors are ValueErrors
        if isinstance(error, InvalidValueError):
            raise
        raise InvalidValueError(
            "config", f"{path} is not valid {path.suffix[1:]}: {error}"
        ) from None
    if not isinstance(raw, dict):
        raise InvalidValueError("config", f"{path}: expected tables {', '.join(SECTIONS)}")
    sections: dict[str, dict[str, Any]] = {}
    for name, table in raw.items():
        if name not in SECTIONS:
            raise InvalidValueError(
                "config", f"{path}: unknown table [{name}]; expected {', '.join(SECTIONS)}"
            )
        sections[name] = _section_values(name, table, f"{path} [{name}]")
    return sections


def format_run_config(sections: Mapping[str, Mapping[str, Any]], *, as_json: bool = False) -> str:
    """Write run settings (table -> field -> value) as TOML, or JSON with ``as_json``.

    Tables and keys follow the dataclasses' order; fields a table does not hold are left out
    (their defaults apply when the file is read back).
    """
    ordered = {
        name: {i.name: sections[name][i.name] for i in describe(cls) if i.name in sections[name]}
        for name, cls in SECTIONS.items()
        if name in sections
    }
    if as_json:
        return json.dumps(ordered, indent=2) + "\n"
    lines: list[str] = []
    for name, table in ordered.items():
        lines += [f"[{name}]", *(f"{k} = {_toml_value(v)}" for k, v in table.items()), ""]
    return "\n".join(lines)


def _section_values(name: str, table: Any, source: str) -> dict[str, Any]:
    cls = SECTIONS[name]
    if not isinstance(table, dict):
        raise InvalidValueError("config", f"{source}: expected a table of settings")
    optional = {i.name for i in describe(cls) if i.annotation.replace(" ", "").endswith("|None")}
    derived = set(_DERIVED.get(name, ()))
    for key in derived & set(table):
        raise InvalidValueError(key, f"{source}: {key} is decided by the data, not set here")
    values = {
        k: None if k in optional and isinstance(v, str) and v.lower() == "none" else v
        for k, v in table.items()
    }
    stand_in = {"vocab_size": 2} if name == "model" else {}
    checked: Any = config_from_dict(cls, {**values, **stand_in}, source=source)  # validates
    return {k: getattr(checked, k) for k in values}


def _toml_value(value: Any) -> str:
    if value is None:
        return '"none"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a TOML basic string
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} {value!r} as TOML")


def _toml_loads(text: str) -> Any:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10 reads TOML only with tomli installed
        try:
            import tomli as tomllib  # type: ignore[import-not-found]
        except ModuleNotFoundError:
            raise InvalidValueError(
                "config", "reading TOML needs Python 3.11+ or `pip install tomli`; or use JSON"
            ) from None
    return tomllib.loads(text)


def run_settings(
    data: DataConfig, model: ModelConfig | Mapping[str, Any], train: TrainConfig
) -> dict[str, dict[str, Any]]:
    """The three tables of a run as plain values (``vocab_size`` left out)."""
    model_values = dict(dataclasses.asdict(model) if isinstance(model, ModelConfig) else model)
    model_values.pop("vocab_size", None)
    return {
        "data": dataclasses.asdict(data),
        "model": model_values,
        "train": dataclasses.asdict(train),
    }


#: The file in a run folder that says what text the run was trained on (`DataConfig`).
RUN_DATA_FILE = "data.json"


def save_run_data(run_dir: str | Path, data: DataConfig) -> Path:
    """Write a run's `DataConfig` to ``run_dir/data.json`` (so a resume reads the same text)."""
    path = Path(run_dir) / RUN_DATA_FILE
    values = {k: list(v) if isinstance(v, tuple) else v for k, v in vars(data).items()}
    return atomic_write_text(path, json.dumps(values, indent=2) + "\n", what="run data settings")


def load_run_data(run_dir: str | Path) -> DataConfig | None:
    """The `DataConfig` saved in ``run_dir/data.json``, or None when the run has none (a run
    made from Python). Files written by textgen 0.1 are read too.

    Raises:
        ValueError: the file is not valid JSON or holds a bad setting (naming the file).
    """
    path = Path(run_dir) / RUN_DATA_FILE
    if not path.is_file():
        return None
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise InvalidValueError("data", f"{path} is not valid JSON: {error}") from None
    if isinstance(saved, dict) and "val_file" in saved:  # textgen 0.1 spelling
        saved["val_files"] = saved.pop("val_file")
    return config_from_dict(DataConfig, saved, source=str(path))


def describe_run(checkpoint: Checkpoint) -> dict[str, dict[str, Any]]:
    """The run configuration that reproduces the run a checkpoint belongs to: ``[model]`` and
    ``[train]`` from the checkpoint, ``[data]`` from the run folder's ``data.json`` (left out
    when the run has none)."""
    folder = checkpoint.path.parent if checkpoint.path is not None else None
    data = load_run_data(folder) if folder is not None else None
    train = TrainConfig.from_dict(checkpoint.metadata.get("train_config") or {})
    settings = run_settings(data or DataConfig(), checkpoint.model_config, train)
    if data is None:
        del settings["data"]
    return settings


__all__ = [
    "RUN_DATA_FILE",
    "SECTIONS",
    "describe_run",
    "format_run_config",
    "load_run_data",
    "read_run_config",
    "run_settings",
    "save_run_data",
]
