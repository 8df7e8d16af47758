"""The Sampler on the real model and tokenizers (test_sampler.py uses controllable fakes)."""

import codecs

import pytest
import torch

from textgen import BPETokenizer, CharTokenizer, LSTMLanguageModel, ModelConfig, Sampler
from textgen.tokenizers import UnknownTokenError

TEXT = "héllo wörld ☃ and more text, with 漢字 too.\n" * 3


def make(tokenizer):
    torch.manual_seed(0)
    tokenizer.fit([TEXT])
    model = LSTMLanguageModel(
        ModelConfig(vocab_size=tokenizer.vocab_size, embed_dim=8, hidden_size=16, num_layers=2)
    )
    return Sampler(model, tokenizer)


def test_greedy_matches_a_manual_argmax_loop_with_carried_state():
    sampler = make(CharTokenizer())
    model, tokenizer = sampler.model, sampler.tokenizer
    prompt = "héllo"
    result = sampler.generate(prompt, greedy=True, max_new_tokens=12)[0]
    model.eval()
    with torch.no_grad():
        logits, state = model(torch.tensor([tokenizer.encode(prompt)]))
        ids = []
        for _ in range(12):
            next_id = int(logits[0, -1].argmax())
            ids.append(next_id)
            logits, state = model(torch.tensor([[next_id]]), state)
    assert result.token_ids == ids
    assert result.text == tokenizer.decode(ids)


def test_batched_samples_equal_single_runs_with_offset_seeds():
    sampler = make(CharTokenizer())
    batch = sampler.generate("wör", num_samples=3, max_new_tokens=15, seed=7, top_p=0.9)
    for i, sample in enumerate(batch):
        single = sampler.generate("wör", max_new_tokens=15, seed=7 + i, top_p=0.9)[0]
        assert single.text == sample.text


def test_unseen_prompt_character_names_it_and_its_position():
    sampler = make(CharTokenizer())
    with pytest.raises(UnknownTokenError, match=r"'Z' at position 3"):
        sampler.generate("hélZo")


def test_bpe_streaming_prints_whole_characters_and_matches_generate():
    sampler = make(BPETokenizer(vocab_size=300, min_frequency=2))
    pieces = list(sampler.stream("漢", max_new_tokens=40, seed=3, temperature=1.5))
    text = sampler.generate("漢", max_new_tokens=40, seed=3, temperature=1.5)[0].text
    assert "".join(pieces) == text
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    ids = sampler.generate("漢", max_new_tokens=40, seed=3, temperature=1.5)[0].token_ids
    expected = decoder.decode(sampler.tokenizer.decode_bytes(ids), final=True)
    assert text == expected


def test_settings_that_remove_every_token_fail_clearly():
    sampler = make(CharTokenizer())
    every_char = tuple(sorted(set(TEXT)))
    with pytest.raises(ValueError, match="removed every token at new token 1"):
        sampler.generate("wör", bad_words=every_char, max_new_tokens=5, seed=0)


def test_beam_search_never_emits_removed_tokens():
    sampler = make(CharTokenizer())
    every_char = tuple(sorted(set(TEXT)))
    with pytest.raises(ValueError, match="removed every token"):
        sampler.generate("wör", num_beams=2, bad_words=every_char, max_new_tokens=5)
    for beam in sampler.generate(
        "wör", num_beams=3, num_samples=3, no_repeat_ngram_size=1, max_new_tokens=12
    ):
        assert len(set(beam.token_ids)) == len(beam.token_ids)  # 1-gram repeats were banned
