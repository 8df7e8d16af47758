import random

import numpy as np
import pytest
import torch

from textgen import runtime
from textgen.runtime import resolve_device, rng_state, seed_everything, set_rng_state


def test_resolve_device_cpu_and_auto():
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "mps" if runtime._mps_available() else "cpu"
    assert resolve_device("auto").type == expected


@pytest.mark.parametrize(
    ("cuda", "mps", "expected", "reason"),
    [
        (True, True, "cuda", "CUDA available"),
        (False, True, "mps", "no CUDA, Apple MPS available"),
        (False, False, "cpu", "no CUDA or MPS"),
    ],
)
def test_auto_prefers_cuda_then_mps_then_cpu_and_says_which(
    monkeypatch, cuda, mps, expected, reason
):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(runtime, "_mps_available", lambda: mps)
    device = resolve_device("auto")
    assert device.type == expected
    assert runtime.describe_device("auto", device) == f"device: {expected} (auto: {reason})"
    assert runtime.describe_device("cpu", torch.device("cpu")) == "device: cpu"


@pytest.mark.parametrize("bad", ["tpu", "cuda:x", ""])
def test_resolve_device_rejects_malformed(bad):
    # every message of resolve_device says "device": match the one for a malformed name
    with pytest.raises(ValueError, match=rf"invalid device {bad!r}; expected 'auto', 'cpu'"):
        resolve_device(bad)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_resolve_device_unavailable_cuda_names_it():
    with pytest.raises(ValueError, match="'cuda:0'.*not available"):
        resolve_device("cuda:0")


def test_seed_everything_is_reproducible():
    seed_everything(3)
    first = (random.random(), np.random.rand(), torch.rand(1).item())
    seed_everything(3)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == first
    with pytest.raises(ValueError, match="seed"):
        seed_everything(-1)


def test_rng_state_round_trip_through_safe_torch_load(tmp_path):
    seed_everything(11)
    random.random(), np.random.rand(), torch.rand(3)
    state = rng_state()
    expected = (random.random(), np.random.rand(), torch.rand(2))
    path = tmp_path / "rng.pt"
    torch.save(state, path)
    restored = torch.load(path, weights_only=True)
    seed_everything(99)
    set_rng_state(restored)
    got = (random.random(), np.random.rand(), torch.rand(2))
    assert got[0] == expected[0] and got[1] == expected[1]
    assert torch.equal(got[2], expected[2])


@pytest.mark.parametrize(
    ("native", "works", "expected"),
    [(False, True, "fp32"), (True, False, "fp32"), (True, True, "bf16")],
)
def test_auto_precision_is_bf16_only_where_the_cpu_computes_it_natively(
    monkeypatch, native, works, expected
):
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: native)
    monkeypatch.setattr(runtime, "bf16_supported", lambda device: works)
    assert runtime.resolve_precision("auto", torch.device("cpu")) == expected
    assert runtime.resolve_precision("fp32", torch.device("cpu")) == "fp32"  # asked: kept


def test_auto_precision_on_cuda_follows_the_gpus_bf16_support(monkeypatch):
    for works, expected in ((True, "bf16"), (False, "fp32")):
        monkeypatch.setattr(runtime, "bf16_supported", lambda device, works=works: works)
        assert runtime.resolve_precision("auto", torch.device("cuda")) == expected
    assert runtime.resolve_precision("auto", torch.device("mps")) == "fp32"


def test_the_cpu_flags_are_read_from_proc_cpuinfo(monkeypatch, tmp_path):
    fake = tmp_path / "cpuinfo"
    fake.write_text("processor : 0\nflags : fpu sse avx2 amx_bf16 amx_tile\n", encoding="utf-8")
    real_open = open
    monkeypatch.setattr(
        "builtins.open",
        lambda path, *a, **k: real_open(fake if path == "/proc/cpuinfo" else path, *a, **k),
    )
    assert runtime.cpu_has_native_bf16()
    fake.write_text("flags : fpu sse avx2\n", encoding="utf-8")
    assert not runtime.cpu_has_native_bf16()
