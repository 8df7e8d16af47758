import math

import pytest
import torch

from textgen.dropout import _threshold_and_scale, dropout
from textgen.validation import InvalidTypeError, InvalidValueError

N = 400_000  # elements per statistical check: 4 sigma of a share is about 0.003


def rounded_keep(p: float, dtype: torch.dtype = torch.float32) -> float:
    return _threshold_and_scale(p, dtype)[0] / 32768


def test_off_in_evaluation_and_at_zero():
    x = torch.randn(3, 4)
    assert dropout(x, 0.5, training=False) is x
    assert dropout(x, 0.0) is x


@pytest.mark.parametrize("p", [0.1, 0.2, 0.5, 0.9])
def test_drop_share_and_scale(p):
    torch.manual_seed(0)
    y = dropout(torch.ones(N), p)
    dropped = (y == 0).double().mean().item()
    assert abs(dropped - p) < 4 * math.sqrt(p * (1 - p) / N)
    # Kept elements carry 1 / (rounded keep share) exactly, so the mean is unbiased.
    kept = y[y != 0]
    torch.testing.assert_close(kept, torch.full_like(kept, 1 / rounded_keep(p)))
    assert abs(rounded_keep(p) - (1 - p)) <= 2**-15


def test_every_piece_of_a_random_word_is_uniform():
    # Each 64-bit word feeds four neighbouring elements; random_ leaves one piece's top bit at
    # 0, so a mask that used all 16 bits would keep one position in four at a different rate.
    torch.manual_seed(1)
    p = 0.3
    dropped = (dropout(torch.ones(N), p) == 0).double().view(-1, 4)
    bound = 4 * math.sqrt(p * (1 - p) / (N / 4))
    for position in range(4):
        assert abs(dropped[:, position].mean().item() - p) < bound, position


def test_neighbours_are_independent():
    torch.manual_seed(2)
    p = 0.5
    dropped = (dropout(torch.ones(N), p) == 0).double()
    both = (dropped[:-1] * dropped[1:]).mean().item()
    assert abs(both - p * p) < 4 * math.sqrt(p * p * (1 - p * p) / N)


def test_seeded_by_the_default_generator():
    x = torch.ones(1000)
    torch.manual_seed(3)
    first = dropout(x, 0.5)
    torch.manual_seed(3)
    torch.testing.assert_close(dropout(x, 0.5), first)
    assert not torch.equal(dropout(x, 0.5), first)  # the generator moved on


def test_gradient_flows_through_kept_elements_only():
    torch.manual_seed(4)
    x = torch.randn(6, 50, requires_grad=True)
    y = dropout(x, 0.4)
    upstream = torch.randn_like(y)
    y.backward(upstream)
    scale = 1 / rounded_keep(0.4)
    kept = y.detach() != 0
    assert x.grad is not None
    torch.testing.assert_close(x.grad, torch.where(kept, upstream * scale, 0.0))
    torch.testing.assert_close(y.detach(), torch.where(kept, x.detach() * scale, 0.0))


@pytest.mark.parametrize("p", [0.1, 0.2, 0.3, 0.5])
def test_bf16_keeps_dtype_and_the_expectation(p):
    # The mask holds the scale in bf16, so the kept share is chosen to match the rounded scale:
    # share x scale stays 1 (to 2**-15) and the drop probability moves only slightly.
    keep, scale = _threshold_and_scale(p, torch.bfloat16)
    assert scale == float(torch.tensor(scale, dtype=torch.bfloat16))
    assert abs(keep / 32768 * scale - 1) <= 2**-15 * scale
    assert abs(keep / 32768 - (1 - p)) < 0.003
    torch.manual_seed(5)
    x = torch.full((N,), 1.5, dtype=torch.bfloat16)
    y = dropout(x, p)
    assert y.dtype == torch.bfloat16
    expected = (x[:1].float() * scale).bfloat16()  # x * scale, rounded once
    assert torch.equal(y[y != 0], expected.expand(int((y != 0).sum())))
    dropped = (y == 0).double().mean().item()
    q = keep / 32768
    assert abs(dropped - (1 - q)) < 4 * math.sqrt(q * (1 - q) / N)


def test_mask_shape_broadcasts_one_mask_over_time():
    torch.manual_seed(6)
    y = dropout(torch.ones(4, 9, 32), 0.5, mask_shape=(4, 1, 32))
    assert torch.equal(y, y[:, :1].expand_as(y))
    assert (y == 0).any() and (y != 0).any()


def test_non_contiguous_input():
    torch.manual_seed(7)
    x = torch.randn(64, 48).t()
    y = dropout(x, 0.5)
    assert y.shape == x.shape
    kept = y != 0
    torch.testing.assert_close(y[kept], x[kept] * (1 / rounded_keep(0.5)))


def test_keep_share_below_resolution_falls_back_to_f_dropout():
    torch.manual_seed(8)
    p = 1 - 1e-6  # a keep share of 1e-6 rounds to 0 / 32768: F.dropout draws instead
    y = dropout(torch.ones(1000), p)
    assert torch.isfinite(y).all()
    assert (y == 0).sum() >= 999


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5, float("nan")])
def test_rejects_a_probability_outside_zero_to_one(p):
    x = torch.ones(4)
    with pytest.raises(InvalidValueError, match="p"):
        dropout(x, p)
    assert torch.equal(x, torch.ones(4))  # the input is untouched


def test_rejects_a_probability_that_is_not_a_number():
    with pytest.raises(InvalidTypeError, match="p"):
        dropout(torch.ones(4), "0.1")  # type: ignore[arg-type]
