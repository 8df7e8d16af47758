import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from textgen.data import TokenSplit
from textgen.evaluation import evaluate_split
from textgen.loss import sequence_cross_entropy
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


# -------------------------------------------------- the numbers of the hand-derived stream layout


def reference_evaluation(model, split, batch_size, seq_len, max_batches=None):
    """(tokens, loss) as evaluate_split computed them before it read StreamBatcher's layout: the
    streams derived by hand, the trailing partial window kept."""
    ids = split.ids
    streams = max(1, min(batch_size, (len(ids) - 1) // seq_len))
    length = (len(ids) - 1) // streams
    starts = np.arange(streams) * length  # row i reads ids[i*length : (i+1)*length + 1]
    total_nats, total_tokens, state = 0.0, 0, None
    model.eval()
    with torch.no_grad():
        for batch_index, begin in enumerate(range(0, length, seq_len)):
            if max_batches is not None and batch_index >= max_batches:
                break
            width = min(seq_len, length - begin)
            window = np.stack([ids[s + begin : s + begin + width + 1] for s in starts])
            window_t = torch.from_numpy(window.astype(np.int64))
            logits, state = model(window_t[:, :-1], state)
            y = window_t[:, 1:]
            total_nats += sequence_cross_entropy(logits.float(), y, reduction="sum").item()
            total_tokens += y.numel()
    return total_tokens, total_nats / total_tokens


@pytest.mark.parametrize(
    ("cell", "num_tokens", "batch_size", "seq_len", "max_batches"),
    [
        ("lstm", 101, 1, 16, None),
        ("lstm", 103, 4, 8, None),
        ("gru", 300, 16, 7, None),
        ("lstm", 50, 8, 64, None),  # shorter than one window: one stream
        ("lstm", 2, 4, 8, None),
        ("gru", 500, 3, 9, 5),
        ("lstm", 97, 5, 4, 100),
    ],
)
def test_numbers_equal_the_hand_derived_stream_layout(
    cell, num_tokens, batch_size, seq_len, max_batches
):
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=7, embed_dim=4, hidden_size=8, num_layers=2, cell=cell)
    model = LSTMLanguageModel(config)
    ids = np.random.default_rng(1).integers(0, 7, num_tokens).astype(np.uint8)
    split = TokenSplit(ids, num_tokens, num_chars=num_tokens, num_bytes=num_tokens)
    metrics = evaluate_split(
        model, split, batch_size=batch_size, seq_len=seq_len, max_batches=max_batches
    )
    tokens, loss = reference_evaluation(model, split, batch_size, seq_len, max_batches)
    assert metrics["tokens"] == tokens
    assert metrics["loss"] == loss  # bit for bit: the same windows, the same order


def test_the_loop_skips_the_models_input_checks(monkeypatch):
    model, split = model_and_split()

    def refuse(ids):
        raise AssertionError("evaluate_split re-checked ids it built itself")

    monkeypatch.setattr(model, "_check_ids", refuse)
    assert evaluate_split(model, split, batch_size=2, seq_len=8)["tokens"] == 100


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"batch_size": 0}, ValueError, "batch_size must be an integer >= 1, got 0"),
        ({"seq_len": 2.5}, TypeError, "seq_len must be an integer"),
        ({"max_batches": 0}, ValueError, "max_batches must be None or an integer >= 1"),
    ],
)
def test_bad_sizes_name_the_parameter(kwargs, error, match):
    model, split = model_and_split()
    with pytest.raises(error, match=match):
        evaluate_split(model, split, **kwargs)
    with pytest.raises(TypeError, match="split must be a TokenSplit, got ndarray"):
        evaluate_split(model, split.ids)


def test_unknown_tokens_are_counted_and_a_large_share_is_flagged(tmp_path):
    from textgen.data import prepare_corpus
    from textgen.evaluation import evaluate_split, unk_warning
    from textgen.model import LSTMLanguageModel, ModelConfig
    from textgen.tokenizers import WordTokenizer

    tokenizer = WordTokenizer().fit(["the cat sat on the mat\n"])
    text = tmp_path / "other.txt"
    text.write_text("a dog ran to the park\n" * 5, encoding="utf-8")
    split = prepare_corpus([text], tokenizer, val_fraction=0, cache_dir=tmp_path / "c").train
    model = LSTMLanguageModel(ModelConfig(vocab_size=tokenizer.vocab_size, hidden_size=8))
    metrics = evaluate_split(model, split, batch_size=1, seq_len=8, unk_id=tokenizer.unk_id)
    unk = int((split.ids[1:] == tokenizer.unk_id).sum())
    assert metrics["unk_tokens"] == unk and metrics["unk_share"] == unk / metrics["tokens"]
    warning = unk_warning(metrics, "the text")
    assert warning is not None and "<unk>" in warning and "too optimistic" in warning
    assert "unk_tokens" not in evaluate_split(model, split, batch_size=1, seq_len=8)
