"""explain: surprisal equals the evaluation loss; saliency equals a plain autograd computation."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from textgen.data import TokenSplit
from textgen.evaluation import evaluate_split
from textgen.explain import explain
from textgen.model import LSTMLanguageModel, ModelConfig
from textgen.tokenizers import CharTokenizer

TEXT = "the cat sat on the mat; the rat ate the hat."


def tiny(cell="lstm", **overrides):
    tokenizer = CharTokenizer().fit([TEXT])
    torch.manual_seed(0)
    config = ModelConfig(
        vocab_size=tokenizer.vocab_size, embed_dim=6, hidden_size=8, cell=cell, **overrides
    )
    return LSTMLanguageModel(config), tokenizer


def reference_saliency(model, ids):
    """Row t-1: |d log p(ids[t] | ids[:t]) / d e_j| for j < t, one full pass, one grad per t."""
    model.eval()
    ids = torch.tensor(ids)
    embeddings = model.embedding(ids[None]).detach().requires_grad_(True)
    logits, _ = model.forward_embeddings(embeddings)
    log_probs = logits[0].log_softmax(-1)
    rows = []
    for t in range(1, len(ids)):
        (grad,) = torch.autograd.grad(log_probs[t - 1, ids[t]], embeddings, retain_graph=True)
        rows.append(grad[0, :t].norm(dim=-1))
    return rows


@pytest.mark.parametrize(
    ("cell", "overrides"),
    [("lstm", {}), ("gru", {"num_layers": 1}), ("lstm", {"residual": True, "tie_weights": True})],
)
@pytest.mark.parametrize("batch_size", [1, 5, 64])
def test_saliency_equals_an_independent_autograd_computation(cell, overrides, batch_size):
    model, tokenizer = tiny(cell, **overrides)
    model.train()  # explain must switch dropout off and restore the mode
    result = explain(model, tokenizer, TEXT, batch_size=batch_size)
    assert model.training
    expected = reference_saliency(model, tokenizer.encode(TEXT))
    assert [len(token.saliency) for token in result.tokens] == list(range(len(TEXT)))
    for token, row in zip(result.tokens[1:], expected, strict=True):
        torch.testing.assert_close(torch.tensor(token.saliency), row, rtol=1e-4, atol=1e-7)


def test_a_window_keeps_the_exact_values_of_its_last_positions():
    model, tokenizer = tiny()
    result = explain(model, tokenizer, TEXT, window=7, batch_size=4)
    expected = reference_saliency(model, tokenizer.encode(TEXT))
    for t, (token, row) in enumerate(zip(result.tokens[1:], expected, strict=True), start=1):
        assert len(token.saliency) == min(t, 7)
        torch.testing.assert_close(
            torch.tensor(token.saliency), row[t - len(token.saliency) :], rtol=1e-4, atol=1e-7
        )


def test_mean_surprisal_equals_evaluate_on_the_same_text():
    model, tokenizer = tiny()
    result = explain(model, tokenizer, TEXT)
    ids = np.array(tokenizer.encode(TEXT), dtype=np.uint8)
    split = TokenSplit(ids, len(ids), num_chars=len(TEXT), num_bytes=len(TEXT.encode()))
    metrics = evaluate_split(model, split, batch_size=1, seq_len=16)
    assert result.mean_surprisal == pytest.approx(metrics["loss"], rel=1e-6)
    assert result.bits_per_char == pytest.approx(metrics["bits_per_char"], rel=1e-6)
    assert result.tokens[0].surprisal is None
    surprisals = [token.surprisal for token in result.tokens[1:]]
    assert sum(surprisals) / len(surprisals) == pytest.approx(result.mean_surprisal)


def test_surprisal_and_top_alternatives_come_from_the_softmax():
    model, tokenizer = tiny()
    result = explain(model, tokenizer, TEXT, top_k=3)
    ids = torch.tensor(tokenizer.encode(TEXT))
    model.eval()
    with torch.no_grad():
        probs = F.softmax(model(ids[None, :-1])[0][0], dim=-1)
    token = result.tokens[4]
    assert token.token == TEXT[4]
    assert token.surprisal == pytest.approx(-math.log(probs[3, ids[4]].item()), rel=1e-5)
    values, top_ids = probs[3].topk(3)
    assert [name for name, _ in token.top] == [tokenizer.decode([int(i)]) for i in top_ids]
    assert [p for _, p in token.top] == pytest.approx(values.tolist(), rel=1e-5)
    as_json = result.to_dict()
    assert sorted(as_json) == ["bits_per_char", "mean_surprisal", "tokens"]
    assert sorted(as_json["tokens"][4]) == ["index", "saliency", "surprisal", "token", "top"]
    assert sorted(as_json["tokens"][4]["top"][0]) == ["probability", "token"]


def test_one_token_has_nothing_to_predict():
    model, tokenizer = tiny()
    result = explain(model, tokenizer, "t")
    assert result.mean_surprisal is None and result.bits_per_char is None
    assert result.to_dict()["tokens"] == [
        {"index": 0, "token": "t", "surprisal": None, "top": [], "saliency": []}
    ]


@pytest.mark.parametrize(
    ("text", "kwargs", "error", "match"),
    [
        ("", {}, ValueError, "text encodes to no tokens"),
        (b"abc", {}, TypeError, "text must be a str, got bytes"),
        ("the", {"window": 0}, ValueError, "window must be an integer >= 1"),
        ("the", {"batch_size": 1.5}, TypeError, "batch_size must be an integer"),
    ],
)
def test_bad_arguments_name_the_parameter(text, kwargs, error, match):
    model, tokenizer = tiny()
    with pytest.raises(error, match=match):
        explain(model, tokenizer, text, **kwargs)
