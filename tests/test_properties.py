"""Property tests over arbitrary input (hypothesis, modest example counts for speed)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from textgen.data import RandomWindowBatcher, StreamBatcher
from textgen.tokenizers import (
    BPETokenizer,
    CharTokenizer,
    UnknownTokenError,
    WordTokenizer,
    tokenizer_from_dict,
)

FEW = settings(max_examples=40)
BPE = BPETokenizer(vocab_size=300, min_frequency=1).fit(["the quick brown fox, 漢字 and ☃\n" * 5])


@FEW
@given(train=st.text(min_size=1, max_size=80), text=st.text(max_size=120))
def test_char_tokenizer_round_trips_or_names_the_unknown_character(train, text):
    tokenizer = CharTokenizer().fit([train])
    try:
        ids = tokenizer.encode(text)
    except UnknownTokenError as error:
        assert set(text) - set(train) and "is not in the vocabulary" in str(error)
    else:
        assert tokenizer.decode(ids) == text


@FEW
@given(text=st.text(max_size=200))
def test_byte_level_bpe_round_trips_any_text(text):
    assert BPE.decode(BPE.encode(text)) == text


@FEW
@given(train=st.text(min_size=1, max_size=80), text=st.text(max_size=80))
@pytest.mark.parametrize("kind", ["char", "word", "bpe"])
def test_json_save_and_load_keep_every_encoding(kind, train, text):
    tokenizer = {
        "char": lambda: CharTokenizer(unknown="unk"),
        "word": WordTokenizer,
        "bpe": lambda: BPETokenizer(vocab_size=270, min_frequency=1),
    }[kind]().fit([train])
    again = tokenizer_from_dict(tokenizer.to_dict())
    assert again.to_dict() == tokenizer.to_dict()
    assert again.encode(text) == tokenizer.encode(text)
    assert again.decode(again.encode(train)) == tokenizer.decode(tokenizer.encode(train))


@FEW
@given(num_tokens=st.integers(20, 400), batch_size=st.integers(1, 5), seq_len=st.integers(1, 9))
def test_stream_batches_cover_each_token_once_per_epoch(num_tokens, batch_size, seq_len):
    if num_tokens < batch_size * seq_len + 1:
        return
    ids = np.arange(num_tokens, dtype=np.uint32)
    batcher = StreamBatcher(ids, batch_size, seq_len, keep_partial_window=True)
    seen = np.concatenate([x.flatten().numpy() for x, _ in batcher.iter_epoch()])
    targets = np.concatenate([y.flatten().numpy() for y in _targets(batcher, batcher.epoch - 1)])
    assert len(seen) == len(set(seen.tolist()))  # nothing twice
    stream_len = (num_tokens - 1) // batch_size
    assert sorted(seen.tolist()) == list(range(batch_size * stream_len))  # nothing dropped
    assert (targets == np.sort(seen)[np.argsort(np.argsort(seen))] + 1).all()


def _targets(batcher, epoch):
    return [batcher.get_batch(k, epoch)[1] for k in range(len(batcher))]


@FEW
@given(num_tokens=st.integers(20, 300), batch_size=st.integers(1, 4), seq_len=st.integers(1, 8))
def test_random_windows_visit_each_window_once_per_epoch(num_tokens, batch_size, seq_len):
    if num_tokens < batch_size * seq_len + 1:
        return
    ids = np.arange(num_tokens, dtype=np.uint32)
    batcher = RandomWindowBatcher(ids, batch_size, seq_len, seed=3)
    starts = [int(row[0]) for x, y in batcher.iter_epoch() for row in x]
    assert len(starts) == len(set(starts)) == (num_tokens - 1) // seq_len
    assert all(start % seq_len == 0 for start in starts)


@FEW
@given(stop=st.integers(0, 40), random_windows=st.booleans())
def test_a_restored_cursor_gives_the_same_next_batches(stop, random_windows):
    ids = np.arange(200, dtype=np.uint16)

    def make():
        if random_windows:
            return RandomWindowBatcher(ids, 3, 7, seed=1)
        return StreamBatcher(ids, 3, 7)

    first = make()
    stream = iter(first)
    for _ in range(stop):
        next(stream)
    second = make()
    second.load_state_dict(first.state_dict())
    for (x1, y1), (x2, y2) in zip(
        [next(stream) for _ in range(3)], [next(iter(second)) for _ in range(3)], strict=True
    ):
        assert x1.equal(x2) and y1.equal(y2)
