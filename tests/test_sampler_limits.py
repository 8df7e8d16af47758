"""The Sampler at its limits: long prompts, models and tokenizers of different sizes."""

from __future__ import annotations

import itertools

import pytest
import torch

from textgen import CharTokenizer, LSTMLanguageModel, ModelConfig, Sampler, decoding
from textgen.tokenizers import UnknownTokenError

TEXT = "the quick brown fox jumps over the lazy dog\n"


def _model(vocab_size, seed=0):
    torch.manual_seed(seed)
    return LSTMLanguageModel(ModelConfig(vocab_size=vocab_size, embed_dim=8, hidden_size=16))


@pytest.mark.parametrize("method", ["generate", "stream", "beam_search"])
def test_a_long_prompt_is_read_in_chunks_with_the_state_carried(monkeypatch, method):
    tokenizer = CharTokenizer().fit([TEXT])
    sampler = Sampler(_model(tokenizer.vocab_size), tokenizer)
    prompt = TEXT * 5  # 220 tokens

    def run():
        if method == "stream":
            return "".join(sampler.stream(prompt, max_new_tokens=20, greedy=True))
        return getattr(sampler, method)(prompt, max_new_tokens=20, greedy=True)[0].token_ids

    whole = run()
    calls = []
    forward = sampler.model.forward
    monkeypatch.setattr(decoding, "PROMPT_CHUNK", 16)
    monkeypatch.setattr(
        sampler.model,
        "forward",
        lambda ids, *a, **k: calls.append(ids.shape[1]) or forward(ids, *a, **k),
    )
    assert run() == whole
    assert max(calls) == 16 and sum(c for c in calls if c > 1) >= 200


def test_ids_past_the_tokenizer_are_never_drawn():
    tokenizer = CharTokenizer().fit([TEXT])
    model = _model(tokenizer.vocab_size + 40)
    with torch.no_grad():
        model.head.bias[tokenizer.vocab_size :] = 50.0  # the extra ids are the most likely
    sampler = Sampler(model, tokenizer)
    for result in sampler.generate("the", max_new_tokens=30, num_samples=8, seed=0):
        assert all(i < tokenizer.vocab_size for i in result.token_ids)  # may end at once (eos)
    greedy = sampler.generate("the", greedy=True, max_new_tokens=5)[0].token_ids
    assert all(i < tokenizer.vocab_size for i in greedy)
    beams = sampler.beam_search("the", num_beams=2, max_new_tokens=5)
    assert all(i < tokenizer.vocab_size for i in beams[0].token_ids)


def test_a_model_smaller_than_its_tokenizer_is_refused():
    tokenizer = CharTokenizer().fit([TEXT])
    with pytest.raises(ValueError, match="vocab_size 5 is smaller than its tokenizer's"):
        Sampler(_model(5), tokenizer)


def test_an_unknown_character_in_a_huge_prompt_is_not_quoted_whole():
    tokenizer = CharTokenizer().fit([TEXT])
    sampler = Sampler(_model(tokenizer.vocab_size), tokenizer)
    with pytest.raises(UnknownTokenError) as caught:
        sampler.generate("the fox " * 1000 + "Z", max_new_tokens=1)
    assert len(str(caught.value)) < 300 and "'Z' at position 8000" in str(caught.value)


def test_a_huge_max_new_tokens_reserves_nothing_up_front(monkeypatch):
    tokenizer = CharTokenizer().fit([TEXT])
    sampler = Sampler(_model(tokenizer.vocab_size), tokenizer)
    expected = sampler.generate("the", max_new_tokens=40, seed=3, return_logprobs=True)[0]
    monkeypatch.setattr(decoding, "_INITIAL_TOKENS", 4)  # the buffers grow 4 -> 8 -> ...
    again = sampler.generate("the", max_new_tokens=40, seed=3, return_logprobs=True)[0]
    assert (again.token_ids, again.logprobs) == (expected.token_ids, expected.logprobs)
    stream = sampler.stream("the", max_new_tokens=10**9, seed=3)
    assert "".join(itertools.islice(stream, len(expected.text))) == expected.text
