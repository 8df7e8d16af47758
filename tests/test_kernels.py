"""The CPU kernel choice: measured once per model shape and phase, overridable, and never a
change of result beyond floating-point rounding."""

from __future__ import annotations

import pytest
import torch

from textgen import kernels
from textgen.kernels import choose_kernel, cpu_kernel
from textgen.model import LSTMLanguageModel, ModelConfig
from textgen.sampler import Sampler
from textgen.tokenizers import CharTokenizer

needs_onednn = pytest.mark.skipif(not kernels.onednn_available(), reason="no oneDNN in this torch")


def tiny_model(hidden: int = 16) -> LSTMLanguageModel:
    torch.manual_seed(0)
    return LSTMLanguageModel(ModelConfig(vocab_size=12, embed_dim=8, hidden_size=hidden)).eval()


@pytest.fixture(autouse=True)
def _measuring(monkeypatch):
    monkeypatch.setenv("TEXTGEN_CPU_KERNEL", "auto")
    monkeypatch.setattr(kernels, "_choices", {})


def counting(model):
    calls = []

    def run(ids):
        calls.append((torch.backends.mkldnn.enabled, tuple(ids.shape)))
        return model(ids, None)

    return run, calls


@needs_onednn
def test_the_choice_is_measured_once_per_shape_phase_and_batch():
    model = tiny_model()
    run, calls = counting(model)
    first = choose_kernel(model, run, phase="step", batch_size=2)
    assert isinstance(first, bool)
    # one warm-up and three timed calls with each kernel, on (B, 1) dummy ids
    assert sorted(calls) == sorted([(False, (2, 1))] * 4 + [(True, (2, 1))] * 4)
    calls.clear()
    assert choose_kernel(model, run, phase="step", batch_size=2) == first
    assert calls == []  # remembered
    choose_kernel(model, run, phase="prompt", batch_size=1)
    assert {shape for _, shape in calls} == {(1, 64)}
    choose_kernel(tiny_model(hidden=24), run, phase="step", batch_size=2)  # another shape


@needs_onednn
@pytest.mark.parametrize("setting", ["native", "onednn"])
def test_the_environment_fixes_the_choice(monkeypatch, setting):
    monkeypatch.setenv("TEXTGEN_CPU_KERNEL", setting)
    model = tiny_model()
    run, calls = counting(model)
    assert choose_kernel(model, run, phase="step", batch_size=1) is (setting == "onednn")
    assert calls == []


def test_bad_settings_are_refused(monkeypatch):
    model = tiny_model()
    run, _ = counting(model)
    with pytest.raises(ValueError, match="phase must be one of 'prompt', 'step', got 'decode'"):
        choose_kernel(model, run, phase="decode", batch_size=1)
    monkeypatch.setenv("TEXTGEN_CPU_KERNEL", "fast")
    with pytest.raises(ValueError, match="TEXTGEN_CPU_KERNEL must be one of"):
        choose_kernel(model, run, phase="step", batch_size=1)


@needs_onednn
def test_the_kernel_switch_is_scoped_and_restored():
    before = torch.backends.mkldnn.enabled
    with cpu_kernel(not before):
        assert torch.backends.mkldnn.enabled is (not before)
    assert torch.backends.mkldnn.enabled is before
    with cpu_kernel(None):
        assert torch.backends.mkldnn.enabled is before


@needs_onednn
def test_both_kernels_compute_the_same_scores_and_text(monkeypatch):
    model = tiny_model()
    ids = torch.randint(0, 12, (3, 20), generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        with cpu_kernel(True):
            a, _ = model(ids)
        with cpu_kernel(False):
            b, _ = model(ids)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    tokenizer = CharTokenizer().fit(["abcdefghijk"])  # 11 characters and end-of-text: 12
    texts = []
    for setting in ("native", "onednn"):
        monkeypatch.setenv("TEXTGEN_CPU_KERNEL", setting)
        texts.append(Sampler(model, tokenizer).generate("ab", max_new_tokens=30, greedy=True)[0])
    assert texts[0].token_ids == texts[1].token_ids
