"""Re-execute the example notebooks with their full settings and save them with their outputs.

This is how the committed notebooks are refreshed, so a code host or docs site shows their
plots, samples and numbers:

    python scripts/run_notebooks.py                 # every examples/notebooks/*.ipynb
    python scripts/run_notebooks.py 03_sampling     # some of them (by name or path)

Deterministic: each notebook runs in a fresh kernel, in a temporary folder, on the CPU with one
thread (``CUDA_VISIBLE_DEVICES=""``, ``OMP_NUM_THREADS=1``: the same arithmetic in the same
order on every run), with its own seeds; cell timings and execution metadata are not recorded,
so re-running on the same machine and library versions changes nothing but what the code
changed. Figures are PNG at matplotlib's inline resolution (72 dpi), which keeps each notebook
small. It takes a few minutes on a 2-core CPU. The test suite runs the notebooks too, with tiny
settings (``TEXTGEN_SMOKE=1``), and checks that the committed files carry outputs.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import nbclient
import nbformat

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "examples" / "notebooks"
#: Environment of the kernels: this checkout's textgen, the CPU, one thread, no smoke mode.
KERNEL_ENV = {
    "PYTHONPATH": str(ROOT / "src"),
    "CUDA_VISIBLE_DEVICES": "",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "PYTHONHASHSEED": "0",
    "TEXTGEN_CPU_KERNEL": "native",  # no speed measurement deciding which kernel runs
    "MPLBACKEND": "module://matplotlib_inline.backend_inline",
    "TQDM_DISABLE": "1",
}


def find(names: list[str]) -> list[Path]:
    """The notebooks named (a stem such as ``01_quickstart``, or a path); all when none."""
    if not names:
        return sorted(NOTEBOOKS.glob("*.ipynb"))
    found = []
    for name in names:
        path = Path(name)
        if not path.suffix:
            path = NOTEBOOKS / f"{name}.ipynb"
        if not path.is_file():
            raise SystemExit(f"no notebook {name!r} (looked for {path})")
        found.append(path)
    return found


def execute(path: Path, timeout: int) -> nbformat.NotebookNode:
    """Run ``path`` top to bottom in a fresh kernel; return the notebook with its outputs."""
    notebook = nbformat.read(path, as_version=4)
    os.environ.pop("TEXTGEN_SMOKE", None)
    os.environ.update(KERNEL_ENV)
    with tempfile.TemporaryDirectory(prefix="textgen-notebook-") as work:
        client = nbclient.NotebookClient(
            notebook,
            timeout=timeout,
            kernel_name="python3",
            resources={"metadata": {"path": work}},
            record_timing=False,
        )
        client.execute()
    for cell in notebook.cells:
        cell.metadata.pop("execution", None)
    notebook.metadata.get("language_info", {}).pop("version", None)  # not the notebook's point
    return notebook


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", help="names or paths (default: all)")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    args = parser.parse_args()
    for path in find(args.notebooks):
        started = time.perf_counter()
        notebook = execute(path, args.timeout)
        nbformat.write(notebook, path)
        size = path.stat().st_size
        print(
            f"{path.relative_to(ROOT)}: {time.perf_counter() - started:.0f} s, {size / 1024:.0f} KB"
        )
    sys.exit(0)


if __name__ == "__main__":
    main()
