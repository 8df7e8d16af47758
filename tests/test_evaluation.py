import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from textgen.data import TokenSplit
from textgen.evaluation import evaluate_split
from textgen.model import LSTMLanguageModel, ModelConfig


def model_and_split(num_tokens=101, vocab=7):
    torch.manual_seed(0)
    model = LSTMLanguageModel(ModelConfig(vocab_size=vocab, embed_dim=4, hidden_size=8))
    ids = np.random.default_rng(0).integers(0, vocab, num_tokens).astype(np.uint8)
    return model, TokenSplit(ids, num_tokens, num_chars=2 * num_tokens, num_bytes=3 * num_tokens)


def test_one_stream_scores_every_token_with_the_state_carried():
    model, split = model_and_split()
    metrics = evaluate_split(model, split, batch_size=1, seq_len=16)
    ids = torch.from_numpy(split.ids.astype(np.int64))
    model.eval()
    with torch.no_grad():
        logits, _ = model(ids[None, :-1])  # one call over the whole text
    expected = F.cross_entropy(logits[0], ids[1:]).item()
    assert metrics["tokens"] == 100
    assert metrics["loss"] == pytest.approx(expected, rel=1e-5)
    assert metrics["perplexity"] == pytest.approx(math.exp(expected), rel=1e-5)
    # 2 characters and 3 bytes per token in this made-up split:
    assert metrics["bits_per_char"] == pytest.approx(expected / 2 / math.log(2), rel=1e-4)
    assert metrics["bits_per_byte"] == pytest.approx(expected / 3 / math.log(2), rel=1e-4)


def test_parallel_streams_drop_fewer_tokens_than_streams_and_restore_training_mode():
    model, split = model_and_split(num_tokens=103)
    model.train()
    metrics = evaluate_split(model, split, batch_size=4, seq_len=8)
    assert 102 - 4 < metrics["tokens"] <= 102
    assert model.training


def test_a_single_token_cannot_be_scored():
    model, split = model_and_split(num_tokens=1)
    with pytest.raises(ValueError, match="only 1 token"):
        evaluate_split(model, split)
