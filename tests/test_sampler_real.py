"""The Sampler on the real model and tokenizers (test_sampler.py uses controllable fakes)."""

import codecs
from collections import Counter

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
        # min_new_tokens forbids the end-of-text token, the one left
        sampler.generate("wör", bad_words=every_char, max_new_tokens=5, min_new_tokens=2, seed=0)


def test_beam_search_never_emits_removed_tokens():
    sampler = make(CharTokenizer())
    every_char = tuple(sorted(set(TEXT)))
    with pytest.raises(ValueError, match="removed every token"):
        sampler.generate(
            "wör", num_beams=2, bad_words=every_char, max_new_tokens=5, min_new_tokens=2
        )
    for beam in sampler.generate(
        "wör", num_beams=3, num_samples=3, no_repeat_ngram_size=1, max_new_tokens=12
    ):
        assert len(set(beam.token_ids)) == len(beam.token_ids)  # 1-gram repeats were banned


class BanToken:
    """A user's processor in Hugging Face's style: a plain class (no textgen base class) that
    writes into ``scores`` in place."""

    def __init__(self, token_id: int) -> None:
        self.token_id = token_id
        self.shapes: list[tuple[int, ...]] = []

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        self.shapes.append(tuple(input_ids.shape))
        scores[:, self.token_id] = float("-inf")
        return scores


def test_a_user_processor_bans_a_token_from_generate_stream_and_beam_search():
    sampler = make(CharTokenizer())
    tokenizer = sampler.tokenizer
    options = {"max_new_tokens": 30, "temperature": 1.5}
    seeds = range(4)
    # Without the ban the token is there, so the test can fail.
    free = sampler.generate("wör", num_samples=len(seeds), seed=0, **options)
    char = Counter("".join(r.text for r in free)).most_common(1)[0][0]
    token = tokenizer.encode(char)[0]
    assert sum(token in r.token_ids for r in free) >= 2

    ban = BanToken(token)
    banned = sampler.generate(
        "wör", num_samples=len(seeds), seed=0, logits_processors=[ban], **options
    )
    assert ban.shapes[0] == (len(seeds), 3) and ban.shapes[-1] == (len(seeds), 3 + 29)
    for seed, result in zip(seeds, banned, strict=True):
        assert token not in result.token_ids and char not in result.text
        streamed = "".join(sampler.stream("wör", seed=seed, logits_processors=[ban], **options))
        assert streamed == result.text

    beams = sampler.beam_search("wör", num_beams=3, num_samples=3, max_new_tokens=20)
    char = Counter(beams[0].text).most_common(1)[0][0]
    token = tokenizer.encode(char)[0]
    assert token in beams[0].token_ids
    banned_beams = sampler.beam_search(
        "wör", num_beams=3, num_samples=3, max_new_tokens=20, logits_processors=[BanToken(token)]
    )
    assert all(token not in b.token_ids and char not in b.text for b in banned_beams)


def test_decoding_steps_skip_the_model_input_checks(monkeypatch):
    sampler = make(CharTokenizer())
    model = sampler.model
    checked = []
    check_ids = model._check_ids
    monkeypatch.setattr(
        model, "_check_ids", lambda ids: checked.append(ids.shape) or check_ids(ids)
    )
    sampler.generate("wör", max_new_tokens=8, num_samples=2, seed=0)
    list(sampler.stream("wör", max_new_tokens=8, seed=0))
    sampler.beam_search("wör", max_new_tokens=8, num_beams=2)
    assert checked == [(1, 3)] * 3  # each call validated its prompt pass, no step after it


def test_a_documents_model_starts_items_from_end_of_text_and_stops_there():
    tokenizer = CharTokenizer().fit(["Ada", "Bob"])  # lines mode fits no newline
    torch.manual_seed(0)
    model = LSTMLanguageModel(ModelConfig(vocab_size=tokenizer.vocab_size, hidden_size=16))
    with torch.no_grad():
        model.head.bias[tokenizer.eos_id] = 2.0  # an item ends within a few characters
    sampler = Sampler(model, tokenizer, documents=True)
    assert sampler.start_id == tokenizer.eos_id
    newline = CharTokenizer().fit(["Ada\nBob"])
    other = LSTMLanguageModel(ModelConfig(vocab_size=newline.vocab_size, hidden_size=16))
    assert Sampler(other, newline).start_id == newline.encode("\n")[0]  # not documents: newline
    samples = sampler.generate(max_new_tokens=200, num_samples=8, seed=0)
    assert all(s.finish_reason == "eos" and tokenizer.eos_id not in s.token_ids for s in samples)
    assert all("\n" not in s.text and "<|" not in s.text for s in samples)
    assert "".join(sampler.stream(max_new_tokens=200, seed=3)) == sampler.generate(seed=3)[0].text
