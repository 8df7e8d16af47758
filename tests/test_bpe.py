import codecs
import json
import re
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from textgen.tokenizers import (
    END_OF_TEXT,
    PRETOKEN_PATTERN,
    BPETokenizer,
    Tokenizer,
    tokenizer_from_dict,
)
from textgen.tokenizers import base as tokenizer_module

TRAIN_TEXT = (
    "To be, or not to be, that is the question:\n"
    "Whether 'tis nobler in the mind to suffer\n"
    "The slings and arrows of outrageous fortune, 1601.\n"
    "Café crème, naïve façade — déjà vu! 東京 2024 ✓\n"
) * 5

SAMPLE = "The question: to be? Déjà vu in 東京, 1601 times.\n\tNew   words like zyxwv_42!"


@pytest.fixture(scope="module")
def fitted() -> BPETokenizer:
    return BPETokenizer(400).fit([TRAIN_TEXT])


# ---------------------------------------------------------------------------- round trips
@settings(max_examples=60, deadline=None)
@given(train=st.text(max_size=60), text=st.text(max_size=200))
def test_any_unicode_round_trips_without_unknowns(train: str, text: str) -> None:
    tokenizer = BPETokenizer(300, min_frequency=1).fit([train])
    ids = tokenizer.encode(text)
    assert all(0 <= i < tokenizer.vocab_size for i in ids)
    assert tokenizer.decode(ids) == text
    assert tokenizer.decode_bytes(ids) == text.encode("utf-8")


@settings(max_examples=60, deadline=None)
@given(text=st.text(max_size=200))
def test_pretoken_pattern_covers_every_character(text: str) -> None:
    assert "".join(re.findall(PRETOKEN_PATTERN, text)) == text


@pytest.mark.parametrize("text", ["", "a", "\n\n", "multi\nline\r\n text  ", "naïve 東京 🎉🎉"])
def test_round_trip_edge_cases(fitted: BPETokenizer, text: str) -> None:
    assert fitted.decode(fitted.encode(text)) == text


def test_special_tokens_are_single_ids_and_round_trip(fitted: BPETokenizer) -> None:
    text = f"{END_OF_TEXT}To be{END_OF_TEXT}{END_OF_TEXT}question<|endof"
    ids = fitted.encode(text)
    assert ids.count(fitted.eos_id) == 3
    assert ids[0] == fitted.eos_id == 256
    assert fitted.decode(ids) == text


def test_special_tokens_are_never_merged_into_learned_tokens() -> None:
    tokenizer = BPETokenizer(300, min_frequency=1).fit([f"hello{END_OF_TEXT}" * 50])
    learned = [tokenizer.token_bytes(i) for i in range(257, tokenizer.vocab_size)]
    assert learned and not any(b"|" in token for token in learned)


def test_longest_special_token_wins() -> None:
    tokenizer = BPETokenizer(300, special_tokens=["<a>", "<a><b>"]).fit(["x"])
    assert tokenizer.encode("<a><b><a>") == [257, 256]
    assert tokenizer.eos_id is None


# ---------------------------------------------------------------------------- training
def test_first_merges_on_a_hand_made_corpus() -> None:
    # "aaabdaaabac": (a,a) occurs 4 times -> Z; "ZabdZabac": (Z,a) and (a,b) tie at 2, and
    # (a,b) has the smaller ids -> Y; "ZYdZYac": (Z,Y) -> X.
    tokenizer = BPETokenizer(259, special_tokens=()).fit(["aaabdaaabac"])
    assert tokenizer.merges == [(97, 97), (97, 98), (256, 257)]
    assert [tokenizer.token_bytes(i) for i in range(256, 259)] == [b"aa", b"ab", b"aaab"]


def test_ties_go_to_the_smallest_pair_of_ids() -> None:
    tokenizer = BPETokenizer(1000, min_frequency=1, special_tokens=()).fit(["abcd"])
    assert tokenizer.merges == [(97, 98), (99, 100), (256, 257)]


def test_merges_stay_inside_pretokens_and_respect_min_frequency() -> None:
    # Pre-tokens "ab" x1, " ab" x2, " abc" x1: (a,b)=4, then (" ",ab)=3, then (" ab",c)=1.
    corpus = "ab ab ab abc"
    assert BPETokenizer(1000, special_tokens=()).fit([corpus]).merges == [(97, 98), (32, 256)]
    loose = BPETokenizer(1000, min_frequency=1, special_tokens=()).fit([corpus])
    assert loose.merges == [(97, 98), (32, 256), (257, 99)]
    assert loose.encode(corpus) == [256, 257, 257, 258]


def test_vocab_size_is_respected() -> None:
    tokenizer = BPETokenizer(300, min_frequency=1).fit([TRAIN_TEXT])
    assert tokenizer.vocab_size == 300
    assert len(tokenizer.merges) == 300 - 256 - 1
    assert max(tokenizer.encode(TRAIN_TEXT)) == 299


def test_fit_is_deterministic_and_independent_of_chunking() -> None:
    whole = BPETokenizer(400).fit([TRAIN_TEXT]).to_json()
    assert BPETokenizer(400).fit(TRAIN_TEXT).to_json() == whole
    pieces = [TRAIN_TEXT[i : i + 7] for i in range(0, len(TRAIN_TEXT), 7)]
    assert BPETokenizer(400).fit(iter(pieces)).to_json() == whole


def test_special_token_cut_by_a_chunk_boundary_stays_special() -> None:
    whole = BPETokenizer(300, min_frequency=1).fit([f"ab{END_OF_TEXT}cd"])
    cut = BPETokenizer(300, min_frequency=1).fit(["ab<|endoftext|", ">cd"])
    assert cut.merges == whole.merges == [(97, 98), (99, 100)]


@settings(max_examples=60, deadline=None)
@given(
    words=st.lists(st.sampled_from(["ab", "'r", "e", " ", "\n", "<|endof", "text|>", "1"])),
    data=st.data(),
)
def test_chunk_boundaries_do_not_change_the_merges(words: list[str], data: st.DataObject) -> None:
    text = "".join(words)
    cuts = data.draw(st.lists(st.integers(0, len(text)), max_size=4))
    bounds = sorted({0, len(text), *cuts})
    chunks = [text[a:b] for a, b in pairwise(bounds)]
    whole = BPETokenizer(300, min_frequency=1).fit([text])
    assert BPETokenizer(300, min_frequency=1).fit(chunks).merges == whole.merges


def test_fit_rejects_non_text_chunks() -> None:
    with pytest.raises(TypeError, match="chunk 1 is bytes"):
        BPETokenizer(300).fit(["ok", b"bytes"])  # type: ignore[list-item]


def test_unfitted_tokenizer_says_so() -> None:
    tokenizer = BPETokenizer()
    assert not tokenizer.is_fitted
    for use in (
        lambda: tokenizer.encode("x"),
        lambda: tokenizer.decode([1]),
        lambda: tokenizer.vocab_size,
    ):
        with pytest.raises(ValueError, match="not fitted"):
            use()


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"vocab_size": 256}, ValueError, "vocab_size must be >= 257"),
        ({"vocab_size": 300.0}, TypeError, "vocab_size must be an int"),
        ({"min_frequency": 0}, ValueError, "min_frequency must be >= 1"),
        ({"special_tokens": END_OF_TEXT}, TypeError, "special_tokens must be a list"),
        ({"special_tokens": ["a", "a"]}, ValueError, "duplicates"),
        ({"special_tokens": [""]}, ValueError, "non-empty"),
    ],
)
def test_bad_options_are_named(options: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        BPETokenizer(**options)


# ---------------------------------------------------------------------------- decoding
def test_partial_character_decodes_through_an_incremental_decoder() -> None:
    tokenizer = BPETokenizer(300).fit(["plain ascii text " * 20])
    text = "text é東🎉 text"
    ids = tokenizer.encode(text)
    assert tokenizer.decode_bytes(ids[: ids.index(0xC3) + 1]).endswith(b"\xc3")  # mid "é"
    decoder = codecs.getincrementaldecoder("utf-8")()
    printed = []
    for token_id in ids:
        piece = decoder.decode(tokenizer.decode_bytes([token_id]))
        assert "\ufffd" not in piece
        printed.append(piece)
    assert "".join(printed) + decoder.decode(b"", final=True) == text
    assert "" in printed  # an incomplete character was held back


def test_decode_rejects_ids_outside_the_vocabulary(fitted: BPETokenizer) -> None:
    for bad in (fitted.vocab_size, -1, "7", None):
        with pytest.raises(ValueError, match=f"token id {bad!r} is not in the vocabulary"):
            fitted.decode([5, bad])  # type: ignore[list-item]


# ---------------------------------------------------------------------------- JSON
def test_json_round_trip_preserves_merges_and_encodings(fitted: BPETokenizer, tmp_path) -> None:
    path = tmp_path / "bpe.json"
    fitted.save(path)
    loaded = Tokenizer.load(path)
    assert isinstance(loaded, BPETokenizer)
    assert loaded.merges == fitted.merges
    assert loaded.to_dict() == fitted.to_dict()
    assert loaded.encode(SAMPLE) == fitted.encode(SAMPLE)
    assert loaded.vocab_size == fitted.vocab_size and loaded.eos_id == fitted.eos_id


def test_unfitted_tokenizer_round_trips() -> None:
    tokenizer = BPETokenizer(500, min_frequency=3, special_tokens=["<s>", "</s>"])
    loaded = tokenizer_from_dict(json.loads(tokenizer.to_json()))
    assert isinstance(loaded, BPETokenizer) and not loaded.is_fitted
    assert loaded.to_dict() == tokenizer.to_dict()


def test_every_kind_is_registered_by_importing_the_package(fitted: BPETokenizer) -> None:
    assert {"char", "word", "bpe"} <= set(tokenizer_module._REGISTRY)
    loaded = tokenizer_from_dict(fitted.to_dict())
    assert loaded.kind == "bpe"
    assert loaded.encode(SAMPLE) == fitted.encode(SAMPLE)


def _corrupt(data: dict, key: str, value: object) -> dict:
    data = dict(data)
    if value is KeyError:
        del data[key]
    else:
        data[key] = value
    return data


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("merges", [[97, 98], [97, 9999]], "merge 1 is \\[97, 9999\\]"),
        ("merges", [[97, 256]], "merge 0 .*not special"),
        ("merges", [[97, 98, 99]], "merge 0 is"),
        ("merges", [[97, "b"]], "merge 0 is"),
        ("merges", [[97, 98], [97, 98]], "same pair twice"),
        ("merges", {"a": 1}, "'merges' must be a list"),
        ("vocab_size", 260, "more than vocab_size 260 allows"),
        ("vocab_size", 100, "vocab_size must be >= 257"),
        ("vocab_size", "big", "vocab_size must be an int"),
        ("special_tokens", "<|endoftext|>", "special_tokens must be a list"),
        ("min_frequency", KeyError, "missing \\['min_frequency'\\]"),
        ("extra", 1, "unexpected \\['extra'\\]"),
    ],
)
def test_corrupted_json_is_rejected_clearly(
    fitted: BPETokenizer, key: str, value: object, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        tokenizer_from_dict(_corrupt(fitted.to_dict(), key, value))


def test_corrupted_file_names_the_path(tmp_path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"type": "bpe", "format_version": 1, "merges": [[1, 2]', encoding="utf-8")
    with pytest.raises(ValueError, match="broken.json is not valid JSON"):
        Tokenizer.load(path)
