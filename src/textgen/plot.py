"""Training curves: ``metrics.jsonl`` of a run folder drawn as one PNG.

Sits at the end of the flow, beside the CLI: the `Trainer` appends one JSON object per logged
step (``train_loss``, ``train_bpc``, ``lr``, ``grad_norm``, ``clipped``) and per validation
(``val_loss``, ``val_bpc``, ``val_perplexity``) to ``metrics.jsonl``; `plot_metrics` reads it back
and draws loss, learning rate and gradient norm against the step. matplotlib is an optional extra
(``pip install 'textgen-lstm[plot]'``), imported only when a plot is drawn; the figure is drawn with
matplotlib's object API and the Agg renderer, never through pyplot, so it works without a display
and leaves a notebook's or script's own backend alone.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

__all__ = ["load_metrics", "plot_metrics"]

_MISSING_MATPLOTLIB = "plotting needs matplotlib, which is not installed; install it with pip install 'textgen-lstm[plot]'"


def load_metrics(path: str | Path) -> list[dict[str, Any]]:
    """Read the records of a ``metrics.jsonl`` file (or of the run folder holding one).

    Args:
        path: a run folder or a ``metrics.jsonl`` file.

    Returns:
        One dict per non-blank line, in file order.

    Raises:
        FileNotFoundError: no such file (or no ``metrics.jsonl`` in the folder).
        ValueError: a line is not a JSON object (naming the file and line number), or the file
            holds no records.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "metrics.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"metrics file {path} does not exist")
    records = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}, line {number}: not valid JSON ({error.msg})") from None
            if not isinstance(record, dict):
                raise ValueError(f"{path}, line {number}: expected a JSON object")
            records.append(record)
    if not records:
        raise ValueError(f"metrics file {path} is empty: nothing to plot")
    return records


def plot_metrics(
    run_dir_or_metrics_file: str | Path,
    output_png: str | Path | None = None,
    *,
    title: str | None = None,
    dpi: int = 110,
) -> Path:
    """Draw loss, learning rate and gradient norm against the step into a PNG file.

    Panels: (1) training and validation loss, in bits per character when the records carry it
    (``train_bpc`` / ``val_bpc``), else in nats per token; (2) the learning rate; (3) the gradient
    norm before clipping on a log scale, with steps where clipping fired marked. Steps that were
    rolled back after a NaN (``"skipped": true``) are drawn as vertical dotted lines.

    Args:
        run_dir_or_metrics_file: a run folder holding ``metrics.jsonl``, or the file itself.
        output_png: where to write; default ``metrics.png`` beside ``metrics.jsonl``.
        title: figure title (default: the run folder's name).
        dpi: resolution of the PNG.

    Returns:
        The path of the PNG written.

    Raises:
        ImportError: matplotlib is not installed (the message says how to install it).
        FileNotFoundError: the metrics file does not exist.
        ValueError: the file is empty, malformed, or holds no training or validation records.

    Example:
        >>> plot_metrics("runs/shakespeare")  # doctest: +SKIP
        PosixPath('runs/shakespeare/metrics.png')
    """
    source = Path(run_dir_or_metrics_file)
    metrics_file = source / "metrics.jsonl" if source.is_dir() else source
    records = load_metrics(metrics_file)
    train = [r for r in records if "train_loss" in r and not r.get("skipped")]
    val = [r for r in records if "val_loss" in r]
    skipped = [r["step"] for r in records if r.get("skipped") and "step" in r]
    if not train and not val:
        raise ValueError(
            f"{metrics_file} holds no training or validation records (no 'train_loss' or "
            f"'val_loss' keys)"
        )
    figure_class = _figure_class()
    output = Path(output_png) if output_png is not None else metrics_file.with_suffix(".png")
    use_bpc = all(r.get("train_bpc") is not None for r in train) and all(
        r.get("val_bpc") is not None for r in val
    )
    unit = "bits per character" if use_bpc else "nats per token"
    train_key, val_key = ("train_bpc", "val_bpc") if use_bpc else ("train_loss", "val_loss")

    figure = figure_class(figsize=(8, 9))
    loss_ax, lr_ax, grad_ax = figure.subplots(
        3, 1, sharex=True, gridspec_kw={"height_ratios": [2, 1, 1]}
    )
    if train:
        loss_ax.plot(*_series(train, train_key), label="train", color="tab:blue", lw=1)
    if val:
        loss_ax.plot(*_series(val, val_key), "o-", label="validation", color="tab:orange")
    loss_ax.set_ylabel(f"loss ({unit})")
    with_lr = [r for r in train if r.get("lr") is not None]
    lr_ax.plot(*_series(with_lr, "lr"), color="tab:green", lw=1)
    lr_ax.set_ylabel("learning rate")
    lr_ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    _draw_gradients(grad_ax, train)
    for ax in (loss_ax, lr_ax, grad_ax):
        ax.grid(alpha=0.3)
        for i, step in enumerate(skipped):
            label = "NaN rollback" if ax is loss_ax and i == 0 else None
            ax.axvline(step, color="tab:red", ls=":", lw=1, label=label)
    loss_ax.legend(loc="upper right")
    grad_ax.set_xlabel("step")
    figure.suptitle(title if title is not None else metrics_file.parent.name or "textgen run")
    figure.tight_layout()
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output, dpi=dpi)
    return output


def _draw_gradients(ax: Any, train: list[dict[str, Any]]) -> None:
    """Gradient norm on a log axis (only positive finite norms can be drawn there)."""
    steps, norms = _series(
        [r for r in train if _positive(r.get("grad_norm"))],
        "grad_norm",
    )
    ax.plot(steps, norms, color="tab:purple", lw=1, label="norm before clipping")
    clipped = [r for r in train if r.get("clipped") and _positive(r.get("grad_norm"))]
    if clipped:
        ax.plot(*_series(clipped, "grad_norm"), "x", color="tab:red", ms=4, label="clipped")
    if norms:
        ax.set_yscale("log")
    ax.set_ylabel("gradient norm")
    ax.legend(loc="upper right")


def _series(records: list[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    pairs = [(r["step"], r[key]) for r in records if r.get(key) is not None and "step" in r]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def _positive(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


def _figure_class() -> Any:
    """`matplotlib.figure.Figure` (drawn by Agg on savefig), or an ImportError saying how to
    install matplotlib."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError(_MISSING_MATPLOTLIB) from None
    return Figure
