"""Every example script and notebook runs, with tiny settings, without an error."""

import os
import subprocess
import sys
from pathlib import Path

import nbclient
import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
NOTEBOOKS = sorted((EXAMPLES / "notebooks").glob("*.ipynb"))
TINY_MODEL = ["--hidden-size", "16", "--device", "cpu"]

SCRIPTS = {
    "train_char_lstm.py": [
        *TINY_MODEL,
        *("--embed-dim", "8", "--num-layers", "1", "--batch-size", "4", "--seq-len", "16"),
        *("--max-steps", "3", "--eval-every", "3", "--sample-length", "20"),
    ],
    "train_word_lstm.py": [
        *TINY_MODEL,
        *("--embed-dim", "8", "--batch-size", "4", "--seq-len", "8", "--max-steps", "3"),
        *("--sample-length", "10"),
    ],
    "compare_sampling.py": ["--device", "cpu", "--length", "20"],  # the bundled model
    "resume_training.py": [*TINY_MODEL, "--max-steps", "8", "--eval-every", "3"],
}
# A line each script prints once it has done its work.
EXPECTED = {
    "train_char_lstm.py": "stopped at step 3;",
    "train_word_lstm.py": "-" * 60,  # printed above the sample
    "compare_sampling.py": "=== beam search, 4 beams ",  # the last strategy
    "resume_training.py": "weights of A and C bitwise identical: True",
}


@pytest.fixture
def example_env(tmp_path, monkeypatch):
    """A clean environment: this checkout's textgen, a private cache, no display, one thread."""
    env = {
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")])
        ),
        "TEXTGEN_CACHE": str(tmp_path / "cache"),
        "TEXTGEN_SMOKE": "1",
        "MPLBACKEND": "Agg",
        # Tiny models gain nothing from threads, and two busy thread pools on a small machine
        # (pytest-xdist, another job) slow each other down badly.
        "OMP_NUM_THREADS": "1",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def test_every_example_has_a_test():
    tested = [*SCRIPTS, "serve_onnx.py"]  # serve_onnx.py: test_serve_onnx_runs_without_torch
    assert sorted(tested) == sorted(p.name for p in EXAMPLES.glob("*.py"))
    assert len(NOTEBOOKS) >= 4


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_example_script_runs(script, tmp_path, example_env):
    work = tmp_path / "work"
    work.mkdir()
    # compare_sampling.py samples the bundled model: it trains nothing, so it has no run folder
    extra = [] if script == "compare_sampling.py" else ["--out", str(tmp_path / "run")]
    completed = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *SCRIPTS[script], *extra],
        cwd=work,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert EXPECTED[script] in completed.stdout, completed.stdout[-3000:]


#: Each committed notebook stays small enough to read on a code host (images at inline dpi).
MAX_NOTEBOOK_BYTES = 300_000


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_with_its_outputs(notebook):
    """Committed notebooks show their results: every code cell ran, in order, with output where
    it prints or plots, and every figure is in the file. Refresh with
    `python scripts/run_notebooks.py NAME`."""
    nb = nbformat.read(notebook, as_version=4)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    remedy = f"run `python scripts/run_notebooks.py {notebook.stem}` and commit the result"
    counts = [cell.execution_count for cell in code]
    assert counts == list(range(1, len(code) + 1)), f"{notebook.name} is not executed: {remedy}"
    for cell in code:
        source = cell.source
        if "print(" in source or "plt.show()" in source or "display(" in source:
            assert cell.outputs, f"{notebook.name}: a cell has no output: {remedy}"
        if "plt.show()" in source:
            kinds = {key for out in cell.outputs for key in out.get("data", {})}
            assert "image/png" in kinds, f"{notebook.name}: a figure is missing: {remedy}"
        errors = [out for out in cell.outputs if out.output_type == "error"]
        assert not errors, f"{notebook.name}: a cell raised {errors[0].ename}: {remedy}"
    assert notebook.stat().st_size < MAX_NOTEBOOK_BYTES, f"{notebook.name} is too large"


def test_notebooks_stay_small_together():
    assert sum(p.stat().st_size for p in NOTEBOOKS) < 2_000_000


@pytest.mark.slow
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(notebook, tmp_path, example_env):
    nb = nbformat.read(notebook, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        timeout=180,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
        force_raise_errors=True,  # even a cell tagged "raises-exception" may not fail
    )
    client.execute()  # raises CellExecutionError naming the failing cell


def test_serve_onnx_runs_without_torch(tmp_path, example_env):
    """examples/serve_onnx.py generates from an exported model with torch made unimportable."""
    pytest.importorskip("onnxruntime", reason="the export extra is not installed")
    pytest.importorskip("onnx", reason="the export extra is not installed")
    import torch

    from textgen import CharTokenizer, LSTMLanguageModel, ModelConfig
    from textgen.export import export_model

    tokenizer = CharTokenizer().fit(["Romeo and Juliet.\n"])
    torch.manual_seed(0)
    model = LSTMLanguageModel(ModelConfig(vocab_size=tokenizer.vocab_size, hidden_size=16))
    export_model(model, tmp_path / "model.onnx", tokenizer=tokenizer)
    # `import torch` raises ImportError when sys.modules maps it to None.
    runner = (
        "import runpy, sys; sys.modules['torch'] = None; sys.argv = sys.argv[1:]; "
        "runpy.run_path(sys.argv[0], run_name='__main__')"
    )
    completed = subprocess.run(
        [
            sys.executable,
            "-c",
            runner,
            str(EXAMPLES / "serve_onnx.py"),
            str(tmp_path / "model.onnx"),
            "--prompt",
            "Romeo",
            "--length",
            "30",
            "--seed",
            "1",
        ],
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    text = completed.stdout[: -len("\n")]  # print() ends the text with one newline
    # 30 new characters, fewer if the model drew end-of-text (where the example stops)
    assert text.startswith("Romeo") and len("Romeo") < len(text) <= len("Romeo") + 30
    assert "<|endoftext|>" not in text
    assert set(text) <= set("Romeo and Juliet.\n")
