"""Export: ONNX (through onnxruntime) and TorchScript graphs compute what the model computes,
for a whole prompt and step by step, LSTM and GRU, at batch and time sizes other than those
traced; ``textgen export`` writes the model and its tokenizer."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

from textgen import CharTokenizer, LSTMLanguageModel, ModelConfig, save_checkpoint
from textgen.cli import main
from textgen.export import export_model, state_names, tokenizer_path

onnxruntime = pytest.importorskip(
    "onnxruntime", reason="the export extra is not installed: pip install -e '.[export]'"
)
pytest.importorskip("onnx", reason="the export extra is not installed: pip install -e '.[export]'")

CONFIGS = {
    "lstm": {"cell": "lstm"},
    "gru": {"cell": "gru"},
    "lstm-residual-tied": {"cell": "lstm", "residual": True, "tie_weights": True, "embed_dim": 8},
}
TOLERANCE = 1e-4


def make_model(**overrides):
    torch.manual_seed(0)
    settings = {"vocab_size": 20, "embed_dim": 12, "hidden_size": 16, "num_layers": 2}
    return LSTMLanguageModel(ModelConfig(**{**settings, **overrides})).eval()


def onnx_runner(path):
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def run(ids, state):
        feeds = {
            "ids": ids.numpy(),
            **{i.name: s.numpy() for i, s in zip(session.get_inputs()[1:], state, strict=True)},
        }
        logits, *new_state = session.run(None, feeds)
        return torch.from_numpy(logits), tuple(torch.from_numpy(s) for s in new_state)

    return run


def torchscript_runner(path):
    module = torch.jit.load(str(path))

    def run(ids, state):
        logits, *new_state = module(ids, *state)
        return logits, tuple(new_state)

    return run


# PyTorch deprecates TorchScript (torch.jit.load warns); loading is the user's side, not textgen's.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")

RUNNERS = {"onnx": onnx_runner, "torchscript": torchscript_runner}


@pytest.mark.parametrize("fmt", sorted(RUNNERS))
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_exported_logits_equal_pytorch_for_prompt_and_steps(fmt, name, tmp_path):
    model = make_model(**CONFIGS[name])
    path = export_model(model, tmp_path / f"model.{fmt}", format=fmt)
    run = RUNNERS[fmt](path)
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(0, 20, (3, 7), generator=generator)  # batch 3, time 7: not traced sizes
    state = tuple(torch.randn(2, 3, 16, generator=generator) for _ in range(model.state_size))
    with torch.no_grad():
        expected, expected_state = model(ids, state)
    # Prompt: all 7 steps in one call.
    logits, new_state = run(ids, state)
    assert logits.shape == (3, 7, 20)
    torch.testing.assert_close(logits, expected, atol=TOLERANCE, rtol=0)
    for got, want in zip(new_state, expected_state, strict=True):
        torch.testing.assert_close(got, want, atol=TOLERANCE, rtol=0)
    # Stepwise: one token at a time from zeros, carrying the exported graph's own state.
    with torch.no_grad():
        expected, _ = model(ids[:1])
    carried = model.init_state(1)
    for t in range(ids.shape[1]):
        step_logits, carried = run(ids[:1, t : t + 1], carried)
        torch.testing.assert_close(step_logits[:, 0], expected[:, t], atol=TOLERANCE, rtol=0)


def test_onnx_names_follow_the_cell(tmp_path):
    for cell, names in (("lstm", ["h", "c"]), ("gru", ["h"])):
        model = make_model(cell=cell)
        assert list(state_names(model)) == names
        session = onnxruntime.InferenceSession(str(export_model(model, tmp_path / f"{cell}.onnx")))
        assert [i.name for i in session.get_inputs()] == ["ids", *names]
        assert [o.name for o in session.get_outputs()] == ["logits", *(n + "_out" for n in names)]
        assert session.get_inputs()[0].shape == ["batch", "time"]


def test_export_warns_nothing_and_leaves_the_model_alone(tmp_path):
    model = make_model()
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        export_model(model, tmp_path / "m.onnx")
        export_model(model, tmp_path / "m.ts", format="torchscript")
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_export_writes_the_tokenizer_and_refuses_bad_input(tmp_path):
    tokenizer = CharTokenizer().fit(["abc\n"])
    path = export_model(
        make_model(vocab_size=tokenizer.vocab_size), tmp_path / "m.onnx", tokenizer=tokenizer
    )
    assert tokenizer_path(path) == tmp_path / "m.tokenizer.json"
    assert json.loads(tokenizer_path(path).read_text(encoding="utf-8"))["vocab"] == [
        "\n",
        "a",
        "b",
        "c",
        "<|endoftext|>",
    ]
    with pytest.raises(ValueError, match="format"):
        export_model(make_model(), tmp_path / "m.bin", format="tflite")
    with pytest.raises(ValueError, match="is a folder"):
        export_model(make_model(), tmp_path)


def test_cli_export(tmp_path, capsys):
    tokenizer = CharTokenizer().fit(["hello world\n"])
    model = make_model(vocab_size=tokenizer.vocab_size, cell="gru")
    checkpoint = save_checkpoint(tmp_path / "run" / "best.pt", model=model, tokenizer=tokenizer)
    out = tmp_path / "out" / "model.onnx"
    assert main(["export", str(checkpoint.parent), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert str(out) in printed and "inputs ids, h;" in printed
    assert out.is_file() and (tmp_path / "out" / "model.tokenizer.json").is_file()
    assert (
        main(
            ["export", str(checkpoint), "--format", "torchscript", "--out", str(tmp_path / "m.ts")]
        )
        == 0
    )
    assert torch.jit.load(str(tmp_path / "m.ts")) is not None
    assert main(["export", str(tmp_path / "missing"), "--out", str(out)]) == 1
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_missing_onnx_says_how_to_install(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_onnx(name, *args, **kwargs):
        if name == "onnx":
            raise ImportError("No module named 'onnx'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_onnx)
    with pytest.raises(ImportError, match=r"pip install 'textgen-lstm\[export\]'"):
        export_model(make_model(), tmp_path / "m.onnx")
    assert not np.any([p.suffix == ".onnx" for p in tmp_path.iterdir()])
