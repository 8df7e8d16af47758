"""Banned strings never appear in the decoded text, whatever the tokenizer splits them into."""

from __future__ import annotations

import pytest
import torch

from _fakes import TableModel
from textgen import BPETokenizer, CharTokenizer, Sampler, WordTokenizer
from textgen.bans import StringBans

TEXT = "the other one thee there then the theme, the end.\n" * 20


def _tempting_model(tokenizer):
    """Random logits, strongly favouring every token whose text holds 't', 'h' or 'e'."""
    size = tokenizer.vocab_size
    # End-of-text (the last id of char and word vocabularies) is never drawn: the draws are
    # about text, and the random table of the other tokens stays the same.
    text_ids = size - 1 if tokenizer.eos_id == size - 1 else size
    generator = torch.Generator().manual_seed(0)
    table = torch.full((size, size), float("-inf"))
    table[:text_ids, :text_ids] = torch.randn(text_ids, text_ids, generator=generator)
    for i in range(text_ids):
        text = tokenizer.decode([i])
        table[:, i] += 4.0 * sum(text.count(ch) for ch in "the")
    return TableModel(table)


@pytest.mark.parametrize(
    "tokenizer",
    [CharTokenizer(), WordTokenizer(), BPETokenizer(vocab_size=300, min_frequency=2)],
    ids=["char", "word", "bpe"],
)
def test_a_banned_string_never_appears_anywhere_in_the_output(tokenizer):
    tokenizer.fit([TEXT])
    sampler = Sampler(_tempting_model(tokenizer), tokenizer)
    unbanned = sampler.generate("t", max_new_tokens=30, num_samples=10, seed=0)
    assert sum("the" in "t" + r.text for r in unbanned) >= 5  # the model really wants it
    for prompt in ("", "t", "th", "the "):
        results = sampler.generate(
            prompt, max_new_tokens=30, num_samples=10, seed=0, bad_words=["the", "en"]
        )
        for result in results:
            text = prompt + result.text
            # across the prompt boundary too (a ban inside the prompt is the user's own text)
            assert text.count("the") == prompt.count("the")
            assert "en" not in text


def test_bans_hold_in_stream_and_beam_search():
    tokenizer = BPETokenizer(vocab_size=300, min_frequency=2).fit([TEXT])
    sampler = Sampler(_tempting_model(tokenizer), tokenizer)
    streamed = "".join(sampler.stream("t", max_new_tokens=40, seed=1, bad_words=["he"]))
    assert "he" not in "t" + streamed
    for beam in sampler.beam_search(
        "t", num_beams=3, num_samples=3, max_new_tokens=20, bad_words=["he"]
    ):
        assert "he" not in "t" + beam.text


def test_the_ban_table_follows_the_text_not_the_tokens():
    tokenizer = WordTokenizer().fit(["the thee other t he\n"])
    bans = StringBans(["the"], tokenizer)
    ids = {tokenizer.decode([i]): i for i in range(tokenizer.vocab_size)}
    row = bans.banned([[]], tokenizer.vocab_size)[0]
    assert row[ids["the"]] and row[ids["thee"]] and row[ids["other"]]
    assert not row[ids["t"]] and not row[ids["he"]]
    after_t = bans.banned([[ids["t"]]], tokenizer.vocab_size)[0]
    assert after_t[ids["he"]] and not after_t[ids["t"]]  # "t" + "he" is "the"
