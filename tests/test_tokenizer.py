import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from textgen.tokenizers import (
    END_OF_TEXT,
    TOKENIZER_FORMAT_VERSION,
    BPETokenizer,
    CharTokenizer,
    Tokenizer,
    UnknownTokenError,
    WordTokenizer,
    build_tokenizer,
    tokenizer_from_dict,
)

TEXTS = [
    "",
    "hello world",
    "line one\nline two\n\n  indented line\n",
    "Ça va? Grüße, naïve café — 中文字符 日本語",
    "emoji 😀🎉 and flags 🇫🇷, ZWJ 👩‍💻",
    "windows\r\nline endings\r\n",
    "tabs\tand\u00a0non-breaking spaces",
]
CORPUS = "\n".join(TEXTS)


@pytest.mark.parametrize("cls", [CharTokenizer, WordTokenizer])
@pytest.mark.parametrize("text", TEXTS)
def test_round_trip(cls: type[Tokenizer], text: str) -> None:
    tokenizer = cls().fit([CORPUS])
    ids = tokenizer.encode(text)
    assert all(isinstance(i, int) and 0 <= i < tokenizer.vocab_size for i in ids)
    assert tokenizer.decode(ids) == text
    assert tokenizer.encode_array(text).tolist() == ids


def test_char_tokenizer_uses_code_points_not_bytes() -> None:
    tokenizer = CharTokenizer().fit(["é中😀"])
    assert tokenizer.vocab_size == 3 + 1  # and end-of-text
    assert len(tokenizer.encode("😀é")) == 2


@pytest.mark.parametrize("cls", [CharTokenizer, WordTokenizer])
def test_vocabulary_order_is_deterministic(cls: type[Tokenizer]) -> None:
    first = cls().fit(["the cat sat on the mat", "\nzebra 😀"])
    second = cls().fit(["\nzebra 😀", "the cat sat on the mat"])
    assert first.to_dict() == second.to_dict()


def test_char_vocabulary_is_sorted_by_code_point() -> None:
    tokenizer = CharTokenizer(unknown="unk").fit(["cba😀\n"])
    assert tokenizer.vocab == ["<unk>", "\n", "a", "b", "c", "😀", END_OF_TEXT]


def test_word_tokens_keep_whitespace_and_punctuation() -> None:
    tokenizer = WordTokenizer().fit(["Hello, world!\n\n  Bye."])
    assert set(tokenizer.vocab) == {
        "<unk>",
        "Hello",
        ",",
        " ",
        "world",
        "!",
        "\n\n",
        "  ",
        "Bye",
        ".",
        END_OF_TEXT,
    }


def test_word_min_freq_and_max_size() -> None:
    text = "a a a b b c"
    assert WordTokenizer(min_freq=2).fit([text]).vocab == ["<unk>", " ", "a", "b", END_OF_TEXT]
    assert WordTokenizer(max_size=4).fit([text]).vocab == ["<unk>", " ", "a", END_OF_TEXT]
    tokenizer = WordTokenizer(min_freq=2).fit([text])
    assert tokenizer.decode(tokenizer.encode("a c")) == "a <unk>"


def test_word_fit_joins_words_cut_by_chunk_boundaries() -> None:
    whole = WordTokenizer().fit(["hello world, again\n"])
    chunked = WordTokenizer().fit(["hel", "lo wor", "", "ld,", " again", "\n"])
    assert chunked.to_dict() == whole.to_dict()


def test_char_unknown_error_names_character_and_position() -> None:
    tokenizer = CharTokenizer().fit(["abc"])
    with pytest.raises(UnknownTokenError, match=r"character 'z' at position 2 is not in the vocab"):
        tokenizer.encode("abzc")
    with pytest.raises(ValueError, match="character '😀' at position 0"):  # never a KeyError
        tokenizer.encode("😀")


def test_char_unknown_maps_to_unk() -> None:
    tokenizer = CharTokenizer(unknown="unk").fit(["abc"])
    assert tokenizer.unk_id == 0
    ids = tokenizer.encode("a😀c")
    assert ids == [tokenizer.encode("a")[0], 0, tokenizer.encode("c")[0]]
    assert tokenizer.decode(ids) == "a<unk>c"
    assert tokenizer.decode(tokenizer.encode("abz")) == "ab<unk>"  # the ASCII fast path


def test_word_unknown_policy_both_ways() -> None:
    lenient = WordTokenizer().fit(["to be"])
    assert lenient.vocab == ["<unk>", " ", "be", "to", END_OF_TEXT]
    assert lenient.encode("to sleep") == [3, 1, 0]
    strict = WordTokenizer(unknown="error").fit(["to be"])
    with pytest.raises(UnknownTokenError, match=r"word 'sleep' at position 3 is not in the vocab"):
        strict.encode("to sleep")


def test_decode_rejects_out_of_range_ids() -> None:
    tokenizer = CharTokenizer().fit(["ab"])
    with pytest.raises(ValueError, match="token id 5 is out of range for a vocabulary of 3"):
        tokenizer.decode([0, 5])
    with pytest.raises(ValueError, match="token id -1"):
        tokenizer.decode([-1])


def test_unfitted_char_tokenizer_says_so() -> None:
    assert not CharTokenizer().is_fitted
    with pytest.raises(ValueError, match="not fitted"):
        CharTokenizer().encode("a")


@pytest.mark.parametrize(
    "tokenizer",
    [
        CharTokenizer().fit([CORPUS]),
        CharTokenizer(unknown="unk").fit([CORPUS]),
        WordTokenizer(min_freq=1, max_size=20, unknown="unk").fit([CORPUS]),
    ],
    ids=["char", "char-unk", "word"],
)
def test_json_round_trip(tokenizer: Tokenizer, tmp_path) -> None:
    data = json.loads(tokenizer.to_json())
    assert data["type"] == tokenizer.kind and data["format_version"] == TOKENIZER_FORMAT_VERSION
    rebuilt = tokenizer_from_dict(data)
    assert type(rebuilt) is type(tokenizer)
    assert rebuilt.to_dict() == tokenizer.to_dict()
    text = "line one\nline two"
    assert rebuilt.encode(text) == tokenizer.encode(text)
    tokenizer.save(tmp_path / "tok.json")
    assert Tokenizer.load(tmp_path / "tok.json").to_dict() == tokenizer.to_dict()


def test_bad_json_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown tokenizer type 'nope'"):
        tokenizer_from_dict({"type": "nope", "format_version": 1})
    with pytest.raises(ValueError, match="unsupported tokenizer format_version 99"):
        tokenizer_from_dict({"type": "char", "format_version": 99, "vocab": []})
    with pytest.raises(ValueError, match="'vocab' must hold single characters"):
        tokenizer_from_dict({"type": "char", "format_version": 2, "vocab": ["ab", "a"]})
    with pytest.raises(ValueError, match="'vocab' must start with '<unk>'"):
        tokenizer_from_dict({"type": "word", "format_version": 1, "vocab": ["a"]})


def test_build_tokenizer() -> None:
    assert isinstance(build_tokenizer("char"), CharTokenizer)
    word = build_tokenizer("word", min_freq=3, unknown="error")
    assert isinstance(word, WordTokenizer) and word.min_freq == 3
    with pytest.raises(ValueError, match="unknown tokenizer kind 'chars'"):
        build_tokenizer("chars")
    with pytest.raises(TypeError, match="invalid options for the 'char' tokenizer"):
        build_tokenizer("char", min_freq=2)


@pytest.mark.parametrize(
    ("factory", "match"),
    [
        (
            lambda: CharTokenizer(unknown="skip"),
            "unknown must be one of 'error', 'unk', got 'skip'",
        ),
        (lambda: WordTokenizer(min_freq=0), "min_freq must be an integer >= 1"),
        (lambda: WordTokenizer(max_size=1), "max_size must be None or an integer >= 3"),
    ],
)
def test_bad_options(factory, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        factory()


def test_char_encode_array_is_vectorised_and_correct_on_large_text() -> None:
    text = CORPUS * 200
    tokenizer = CharTokenizer().fit([text])
    ids = tokenizer.encode_array(text)
    assert ids.shape == (len(text),)
    lookup = {ch: i for i, ch in enumerate(tokenizer.vocab)}
    assert np.array_equal(ids, [lookup[ch] for ch in text])


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=200))
def test_char_round_trip_property(text: str) -> None:
    tokenizer = CharTokenizer().fit([text[: len(text) // 2], text[len(text) // 2 :]])
    assert tokenizer.decode(tokenizer.encode(text)) == text


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=200))
def test_word_round_trip_property(text: str) -> None:
    tokenizer = WordTokenizer().fit([text])
    assert tokenizer.decode(tokenizer.encode(text)) == text


@pytest.mark.parametrize("cls", [CharTokenizer, WordTokenizer])
def test_end_of_text_is_the_last_fitted_token_and_never_encoded(cls: type[Tokenizer]) -> None:
    tokenizer = cls().fit(["to be <|endoftext|>"])
    assert tokenizer.eos_id == tokenizer.vocab_size - 1
    assert tokenizer.eos_id not in tokenizer.encode("to be <|endoftext|>")  # text, not a marker
    assert tokenizer.decode([tokenizer.eos_id]) == END_OF_TEXT


@pytest.mark.parametrize(
    ("data", "text"),
    [
        (
            {"type": "char", "format_version": 1, "unknown": "error", "vocab": ["\n", "a", "b"]},
            "ab\n",
        ),
        ({"type": "word", "format_version": 1, "vocab": ["<unk>", " ", "a"]}, "a a"),
    ],
)
def test_format_1_vocabularies_load_without_end_of_text(data, text) -> None:
    tokenizer = tokenizer_from_dict(data)
    assert tokenizer.eos_id is None and tokenizer.vocab == data["vocab"]
    assert tokenizer.decode(tokenizer.encode(text)) == text
    assert tokenizer.to_dict()["format_version"] == TOKENIZER_FORMAT_VERSION  # written back: new


def test_char_extend_appends_new_characters_and_keeps_old_ids() -> None:
    tokenizer = CharTokenizer().fit(["abc\n"])
    before = tokenizer.encode("cab\n")
    assert tokenizer.new_symbols(["abz#\n"]) == ["#", "z"]
    assert tokenizer.extend(["#", "z", "a"]) == ["#", "z"]
    assert tokenizer.encode("cab\n") == before and tokenizer.eos_id == 4
    assert tokenizer.encode("z#") == [6, 5] and tokenizer.decode([6, 5]) == "z#"
    rebuilt = tokenizer_from_dict(json.loads(tokenizer.to_json()))
    assert rebuilt.vocab == tokenizer.vocab and rebuilt.encode("za") == tokenizer.encode("za")
    with pytest.raises(ValueError, match="tokens are single characters"):
        tokenizer.extend(["zz"])


def test_old_char_vocabulary_gains_end_of_text_by_extend() -> None:
    old = tokenizer_from_dict({"type": "char", "format_version": 1, "vocab": ["a", "b"]})
    assert old.extend([END_OF_TEXT]) == [END_OF_TEXT] and old.eos_id == 2


def test_word_extend_and_new_symbols() -> None:
    tokenizer = WordTokenizer(unknown="error").fit(["to be"])
    assert tokenizer.new_symbols(["to sleep, to dream"]) == [",", "dream", "sleep"]
    tokenizer.extend(["sleep"])
    assert tokenizer.decode(tokenizer.encode("to sleep")) == "to sleep"
    with pytest.raises(ValueError, match="not one token"):
        tokenizer.extend(["two words"])


def test_bpe_has_nothing_new_and_refuses_to_grow() -> None:
    tokenizer = BPETokenizer(vocab_size=260).fit(["abc abc"])
    assert tokenizer.new_symbols(["😀 new"]) == []
    assert tokenizer.extend([]) == []
    with pytest.raises(ValueError, match="cannot be extended"):
        tokenizer.extend(["x"])
