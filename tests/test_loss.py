import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from textgen.loss import LanguageModelMetrics, compute_metrics, sequence_cross_entropy
from textgen.model import LSTMLanguageModel, ModelConfig


def batch(batch_size: int = 3, seq_len: int = 5, vocab_size: int = 11, dtype=torch.float32):
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(batch_size, seq_len, vocab_size, generator=generator, dtype=dtype)
    targets = torch.randint(0, vocab_size, (batch_size, seq_len), generator=generator)
    return logits, targets


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
@pytest.mark.parametrize("ignore", [False, True])
def test_equals_flattened_cross_entropy(reduction, label_smoothing, ignore):
    logits, targets = batch()
    if ignore:
        targets[0, :2] = -1
        targets[2, 4] = -1
    ignore_index = -1 if ignore else -100
    ours = sequence_cross_entropy(
        logits,
        targets,
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
        reduction=reduction,
    )
    reference = F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]),
        targets.reshape(-1),
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
        reduction=reduction,
    )
    if reduction == "none":
        assert ours.shape == targets.shape
        reference = reference.view(targets.shape)
    torch.testing.assert_close(ours, reference)


def test_mean_skips_ignored_tokens():
    logits, targets = batch()
    targets[1] = -100
    kept = torch.tensor([0, 2])
    # the mean over the 10 kept tokens alone, from log-softmax by hand
    log_probs = logits[kept].log_softmax(dim=-1)
    expected = -log_probs.gather(-1, targets[kept, :, None]).mean()
    torch.testing.assert_close(sequence_cross_entropy(logits, targets), expected)


def test_non_contiguous_logits():
    logits, targets = batch()
    transposed = logits.transpose(0, 1).contiguous().transpose(0, 1)
    assert not transposed.is_contiguous()
    torch.testing.assert_close(
        sequence_cross_entropy(transposed, targets), sequence_cross_entropy(logits, targets)
    )


def test_shape_mismatch_shows_both_shapes():
    logits, targets = batch()
    with pytest.raises(ValueError, match=r"\(3, 5, 11\).*\(3, 4\)"):
        sequence_cross_entropy(logits, targets[:, :4])
    with pytest.raises(ValueError, match=r"\(15, 11\).*\(15,\)"):
        sequence_cross_entropy(logits.view(15, 11), targets.view(15))


def test_bad_options():
    logits, targets = batch()
    with pytest.raises(TypeError, match="targets must have dtype torch.int64"):
        sequence_cross_entropy(logits, targets.float())
    # (F.cross_entropy's own error for a bad reduction also says "reduction")
    with pytest.raises(ValueError, match="unknown reduction 'max'; expected one of"):
        sequence_cross_entropy(logits, targets, reduction="max")
    with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 1\), got 1.0"):
        sequence_cross_entropy(logits, targets, label_smoothing=1.0)


def test_gradcheck_float64():
    logits, targets = batch(2, 3, 5, dtype=torch.float64)
    logits.requires_grad_(True)
    targets[0, 0] = -100
    assert torch.autograd.gradcheck(
        lambda x: sequence_cross_entropy(x, targets, label_smoothing=0.1), (logits,)
    )
    assert torch.autograd.gradcheck(
        lambda x: sequence_cross_entropy(x, targets, reduction="none"), (logits,)
    )


def test_gradient_is_softmax_minus_onehot():
    logits, targets = batch(1, 4, 6, dtype=torch.float64)
    logits.requires_grad_(True)
    sequence_cross_entropy(logits, targets, reduction="sum").backward()
    expected = logits.detach().softmax(-1) - F.one_hot(targets, 6).double()
    torch.testing.assert_close(logits.grad, expected)


def test_fresh_model_loss_is_close_to_log_vocab():
    torch.manual_seed(0)
    vocab_size = 50
    model = LSTMLanguageModel(ModelConfig(vocab_size=vocab_size, embed_dim=8, hidden_size=16))
    ids = torch.randint(0, vocab_size, (4, 9))
    with torch.no_grad():
        logits, _ = model.eval()(ids[:, :-1])
    loss = sequence_cross_entropy(logits, ids[:, 1:]).item()
    assert abs(loss - math.log(vocab_size)) < 0.05


def test_compute_metrics_values():
    total_nats = 1000 * math.log(2) * 1.5  # 1.5 bits per token over 1000 tokens
    metrics = compute_metrics(total_nats, 1000, num_chars=3000, num_bytes=3100)
    assert set(metrics) == {
        "loss",
        "perplexity",
        "bits_per_token",
        "bits_per_char",
        "bits_per_byte",
    }
    assert metrics["loss"] == pytest.approx(1.5 * math.log(2))
    assert metrics["perplexity"] == pytest.approx(2**1.5)
    assert metrics["bits_per_token"] == pytest.approx(1.5)
    assert metrics["bits_per_char"] == pytest.approx(0.5)
    assert metrics["bits_per_byte"] == pytest.approx(1500 / 3100)


def test_compute_metrics_unknown_counts_and_numpy_ints():
    metrics = compute_metrics(10.0, np.int64(5))
    assert metrics["bits_per_char"] is None and metrics["bits_per_byte"] is None
    assert metrics["loss"] == 2.0
    dataclass_form = LanguageModelMetrics.from_totals(10.0, 5, num_chars=10)
    assert dataclass_form.to_dict()["bits_per_char"] == pytest.approx(1 / math.log(2))


def test_perplexity_overflow_is_inf():
    assert compute_metrics(1e6, 1)["perplexity"] == math.inf


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"num_tokens": 0}, "num_tokens"),
        ({"num_tokens": 2.5}, "num_tokens"),
        ({"num_tokens": 3, "num_chars": 0}, "num_chars"),
        ({"num_tokens": 3, "num_bytes": -1}, "num_bytes"),
    ],
)
def test_compute_metrics_rejects_bad_counts(kwargs, name):
    with pytest.raises(ValueError, match=name):
        compute_metrics(1.0, **kwargs)
