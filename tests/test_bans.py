"""Banned strings never appear in the decoded text, whatever the tokenizer splits them into."""

from __future__ import annotations

import pytest
import torch

from _fakes import TableModel
from textgen import BPETokenizer, CharTokenizer, Sampler, WordTokenizer
from textgen.bans import StringBans

TEXT = "the other one thee there then the theme, the end.\n" * 20


def _tempting_model(tokenizer):
    """Random logits, strongly favouring every token whose text holds 't', 'h' or 'e', and
    after a token ending in 't' (or 'h'), one starting with 'h' (or 'e'): the model wants
    "the" (end-of-text aside, so samples run long)."""
    size = tokenizer.vocab_size
    generator = torch.Generator().manual_seed(0)
    table = torch.randn(size, size, generator=generator)
    texts = [tokenizer.decode([i]) if i != tokenizer.eos_id else "" for i in range(size)]
    for i, text in enumerate(texts):
        if i == tokenizer.eos_id:  # end-of-text ends a sample: leave it unfavoured
            continue
        table[:, i] += 4.0 * sum(text.count(ch) for ch in "the")
        for j, before in enumerate(texts):
            if (before.endswith("t") and text.startswith("h")) or (
                before.endswith("h") and text.startswith("e")
            ):
                table[j, i] += 4.0
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
