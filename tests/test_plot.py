import builtins
import json

import pytest

from textgen.cli import main
from textgen.plot import load_metrics, plot_metrics

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _write_metrics(path, *, with_bpc=True, with_val=True, with_skip=True):
    records = []
    for step in range(10, 110, 10):
        loss = 4.0 / (1 + step / 50)
        records.append(
            {
                "step": step,
                "epoch": 0,
                "elapsed": step * 0.1,
                "train_loss": loss,
                "train_bpc": loss / 0.69 if with_bpc else None,
                "lr": 1e-3 * (1 - step / 200),
                "grad_norm": 2.0 / step * 10,
                "clipped": step < 40,
                "clip_events": min(step // 10, 3),
                "tokens_per_s": 1000.0,
            }
        )
        if with_skip and step == 50:
            records.append({"step": 50, "skipped": True, "reason": "loss is nan", "lr": 5e-4})
        if with_val and step % 50 == 0:
            records.append(
                {
                    "step": step,
                    "epoch": 0,
                    "elapsed": step * 0.1,
                    "val_loss": loss * 1.1,
                    "val_bpc": loss * 1.1 / 0.69 if with_bpc else None,
                    "val_perplexity": 2.0,
                }
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def _is_png(path):
    data = path.read_bytes()
    return len(data) > 1000 and data.startswith(PNG_MAGIC)


def test_plot_run_dir_writes_png_beside_metrics(tmp_path):
    _write_metrics(tmp_path / "run" / "metrics.jsonl")
    out = plot_metrics(tmp_path / "run")
    assert out == tmp_path / "run" / "metrics.png"
    assert _is_png(out)


def test_plot_without_bpc_or_validation_falls_back_to_nats(tmp_path):
    metrics = _write_metrics(tmp_path / "m.jsonl", with_bpc=False, with_val=False, with_skip=False)
    out = plot_metrics(metrics, tmp_path / "sub" / "curves.png", title="nats")
    assert out == tmp_path / "sub" / "curves.png"
    assert _is_png(out)


def test_missing_and_empty_files_raise_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="metrics.jsonl"):
        plot_metrics(tmp_path)
    empty = tmp_path / "metrics.jsonl"
    empty.write_text("\n", encoding="utf-8")
    with pytest.raises(ValueError, match="empty"):
        plot_metrics(empty)
    empty.write_text('{"step": 1}\nnot json\n', encoding="utf-8")
    with pytest.raises(ValueError, match="line 2"):
        load_metrics(empty)
    empty.write_text('{"step": 1, "foo": 2}\n', encoding="utf-8")
    with pytest.raises(ValueError, match="no training or validation records"):
        plot_metrics(empty)


def test_missing_matplotlib_says_how_to_install(tmp_path, monkeypatch, capsys):
    _write_metrics(tmp_path / "run" / "metrics.jsonl")
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    with pytest.raises(ImportError, match=r"pip install 'textgen-lstm\[plot\]'"):
        plot_metrics(tmp_path / "run")
    assert main(["plot", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert "textgen-lstm[plot]" in err
    assert len(err.strip().splitlines()) == 1


def test_cli_plot(tmp_path, capsys):
    _write_metrics(tmp_path / "run" / "metrics.jsonl")
    target = tmp_path / "plot.png"
    assert main(["plot", str(tmp_path / "run"), "--output", str(target)]) == 0
    assert capsys.readouterr().out.strip() == str(target)
    assert _is_png(target)
    assert main(["plot", str(tmp_path / "nowhere")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("textgen plot: error:") and "does not exist" in err
