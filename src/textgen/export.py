"""Export: take a trained model out of Python, as ONNX or TorchScript.

This sits after training and beside sampling: the exported graph is the model's own step
function ``(ids, state) -> (logits, state)``, so a runtime without PyTorch runs the same loop as
`textgen.Sampler` (warm the state on the prompt, then one token at a time, carrying the state).
Batch and time are dynamic axes: one file serves a whole prompt (``T`` tokens) and single steps
(``T = 1``) for any number of sequences.

Inputs, in order: ``ids`` int64 ``(B, T)``, then the state tensors float32 ``(L, B, H)``: ``h``
and ``c`` for an LSTM, ``h`` for a GRU. Outputs, in order: ``logits`` float32 ``(B, T, V)`` (raw
scores), then the new state in the same order (``h_out``, ``c_out`` / ``h_out``). A fresh sequence
starts from zeros. The tokenizer is written next to the model as JSON (``<file stem>.tokenizer.json``,
the format of `Tokenizer.to_dict`), so the file pair is all a server needs.

ONNX uses PyTorch's TorchScript-based exporter (``dynamo=False``): it keeps the time axis
dynamic through the fused LSTM/GRU node and needs no ``onnxscript``; it needs ``onnx`` to be
installed (``pip install 'textgen-lstm[export]'``), and ``onnxruntime`` to run the result.
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import torch
from torch import nn

from textgen.model import LSTMLanguageModel
from textgen.tokenizers import Tokenizer
from textgen.validation import InvalidValueError, check_choice

#: Export formats: ONNX (onnxruntime and other runtimes) and TorchScript (``torch.jit.load``).
FORMATS = ("onnx", "torchscript")
#: ONNX opset written by `export_model`: 17 is read by every onnxruntime since 1.14.
ONNX_OPSET = 17

_MISSING_ONNX = (
    "ONNX export needs the onnx package, which is not installed; install it with "
    "pip install 'textgen-lstm[export]'"
)


class _StepFunction(nn.Module):
    """The model as ``(ids, *state) -> (logits, *new_state)``: flat tensors in and out, which is
    what the exporters name and what a runtime without Python tuples can call."""

    def __init__(self, model: LSTMLanguageModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, ids: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        logits, new_state = self.model(ids, tuple(state), check=False)
        return (logits, *new_state)


def state_names(model: LSTMLanguageModel) -> tuple[str, ...]:
    """Names of the state inputs of an exported ``model``: ``("h", "c")`` for an LSTM, ``("h",)``
    for a GRU (the outputs add ``_out``)."""
    return ("h", "c") if model.config.cell == "lstm" else ("h",)


def tokenizer_path(path: str | Path) -> Path:
    """Where `export_model` writes the tokenizer of a model exported to ``path``:
    ``model.onnx`` -> ``model.tokenizer.json``."""
    path = Path(path)
    return path.with_name(path.stem + ".tokenizer.json")


def export_model(
    model: LSTMLanguageModel,
    path: str | Path,
    *,
    format: str = "onnx",
    tokenizer: Tokenizer | None = None,
) -> Path:
    """Export ``model``'s step function ``(ids, state) -> (logits, state)`` to ``path``.

    The model is exported in eval mode (no dropout), in float32, on the CPU; the caller's model
    is not changed (a copy is exported).

    Args:
        model: the model to export.
        path: the file to write (parent folders are created).
        format: ``"onnx"`` or ``"torchscript"``.
        tokenizer: when given, also written as JSON to `tokenizer_path` ``(path)``.

    Returns:
        ``path``.

    Raises:
        InvalidValueError: an unknown ``format``.
        ImportError: ``format="onnx"`` and the ``onnx`` package is missing (says how to install).

    Example:
        >>> model = LSTMLanguageModel(ModelConfig(vocab_size=20, hidden_size=16))  # doctest: +SKIP
        >>> export_model(model, "model.onnx", tokenizer=tokenizer)                 # doctest: +SKIP
    """
    check_choice("format", format, FORMATS)
    if not isinstance(model, LSTMLanguageModel):
        raise TypeError(f"model must be an LSTMLanguageModel, got {type(model).__name__}")
    if format == "onnx":
        try:
            import onnx  # noqa: F401  (torch's exporter imports it; fail first, in one line)
        except ImportError:
            raise ImportError(_MISSING_ONNX) from None
    path = Path(path)
    if path.is_dir():
        raise InvalidValueError("path", f"export path {path} is a folder; give a file name")
    path.parent.mkdir(parents=True, exist_ok=True)
    step = _StepFunction(copy.deepcopy(model).float().cpu()).eval()
    # Example inputs of batch 2 and time 3: sizes other than 1 keep the tracer from treating
    # either axis as a constant.
    example_ids = torch.zeros((2, 3), dtype=torch.long)
    example_state = step.model.init_state(2)
    with warnings.catch_warnings(), torch.no_grad():
        # The tracer's notes (legacy exporter, Python booleans inside nn.LSTM's own checks, the
        # LSTM batch-size advice that does not apply when the state is an input) would reach the
        # user as warnings; the parity tests are what show the graph is right.
        warnings.simplefilter("ignore")
        if format == "torchscript":
            traced = torch.jit.trace(step, (example_ids, *example_state), check_trace=False)
            torch.jit.save(traced, str(path))
        else:
            _export_onnx(step, path, example_ids, example_state)
    if tokenizer is not None:
        tokenizer.save(tokenizer_path(path))
    return path


def _export_onnx(
    step: _StepFunction,
    path: Path,
    example_ids: torch.Tensor,
    example_state: tuple[torch.Tensor, ...],
) -> None:
    names = state_names(step.model)
    outputs = tuple(f"{name}_out" for name in names)
    state_axes = {1: "batch"}
    dynamic_axes = {
        "ids": {0: "batch", 1: "time"},
        "logits": {0: "batch", 1: "time"},
        **{name: state_axes for name in (*names, *outputs)},
    }
    torch.onnx.export(
        step,
        (example_ids, *example_state),
        str(path),
        input_names=["ids", *names],
        output_names=["logits", *outputs],
        dynamic_axes=dynamic_axes,
        opset_version=ONNX_OPSET,
        dynamo=False,
    )


__all__ = ["FORMATS", "ONNX_OPSET", "export_model", "state_names", "tokenizer_path"]
