"""Hostile and malformed input: each is refused in one clear line or handled exactly.

(Pickled code, truncated and foreign checkpoints and future format versions are in
test_checkpoint.py; invalid UTF-8 in test_sources.py.)"""

from __future__ import annotations

import json

import pytest
import torch

from textgen import CharTokenizer, LSTMLanguageModel, ModelConfig, SampleConfig, Sampler
from textgen.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from textgen.data import StreamBatcher, prepare_corpus, sources
from textgen.tokenizers import BPETokenizer, Tokenizer, WordTokenizer


def _checkpoint(tmp_path):
    tokenizer = CharTokenizer().fit(["abc\n"])
    model = LSTMLanguageModel(ModelConfig(vocab_size=tokenizer.vocab_size, hidden_size=8))
    return save_checkpoint(tmp_path / "model.pt", model=model, tokenizer=tokenizer)


def test_a_zero_byte_checkpoint_is_refused_naming_it(tmp_path):
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match=f"{empty} is not a checkpoint"):
        load_checkpoint(empty)


def test_weights_whose_shapes_disagree_with_the_config_are_refused(tmp_path):
    path = _checkpoint(tmp_path)
    payload = torch.load(path, weights_only=True)
    payload["model_config"]["hidden_size"] = 16  # the weights say 8
    torch.save(payload, path)
    checkpoint = load_checkpoint(path)
    with pytest.raises(CheckpointError, match=f"{path}: cannot rebuild the model.*size mismatch"):
        checkpoint.build_model()
    try:
        checkpoint.build_model()
    except CheckpointError as error:
        assert "\n" not in str(error) and "more)" in str(error)


MESSY = [
    "nul\x00bytes\x00inside\n",
    "mixed\r\nnew\rlines\nhere\r\n",
    "emoji 👩‍👩‍👧 and flags 🇫🇷\n",
    "right to left: שלום עולם, مرحبا بالعالم\n",
    "combining: e\u0301 a\u0308 \u0915\u094d\u0937\n",
]


@pytest.mark.parametrize("text", MESSY, ids=["nul", "newlines", "emoji", "rtl", "combining"])
@pytest.mark.parametrize("kind", ["char", "word", "bpe"])
def test_awkward_text_goes_through_the_pipeline_unchanged(tmp_path, text, kind):
    path = tmp_path / "messy.txt"
    path.write_bytes((text * 20).encode("utf-8"))
    options = {"vocab_size": 300} if kind == "bpe" else {}
    corpus = prepare_corpus(
        [path], tokenizer_kind=kind, tokenizer_options=options, val_fraction=0,
        cache_dir=tmp_path / "c",
    )  # fmt: skip
    decoded = corpus.tokenizer.decode([int(i) for i in corpus.train.ids])
    assert decoded == text * 20


def test_lone_surrogates_are_invalid_utf8_or_replaced(tmp_path):
    path = tmp_path / "surrogate.txt"
    path.write_bytes("a\ud800b\n".encode("utf-8", "surrogatepass") * 10)
    with pytest.raises(ValueError, match="invalid UTF-8 at byte offset 1"):
        prepare_corpus([path], val_fraction=0, cache_dir=tmp_path / "c")
    corpus = prepare_corpus([path], val_fraction=0, errors="replace", cache_dir=tmp_path / "c")
    assert "\ufffd" in corpus.tokenizer.vocab


def test_a_huge_line_without_a_newline_is_chunked_exactly(monkeypatch):
    monkeypatch.setattr(sources, "_MAX_CARRY", 1000)  # stands for 16 Mi characters
    line = "x" * 25_000  # no newline, no space: no safe cut anywhere
    pieces = (line[i : i + 777] for i in range(0, len(line), 777))
    chunks = list(sources.text_chunks(pieces, chunk_chars=500))
    assert "".join(chunks) == line and max(map(len, chunks)) < 3000


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda d: d.update(vocab=["a", "a"]), "duplicate"),
        (lambda d: d.update(vocab="abc"), "list of strings"),
        (lambda d: d.pop("vocab"), "list of strings"),
        (lambda d: d.update(vocab=["ab"]), "single characters"),
        (lambda d: d.update(type="nonsense"), "unknown tokenizer type"),
        (lambda d: d.update(format_version=99), "format_version 99"),
    ],
)
def test_a_hand_edited_tokenizer_json_is_refused_clearly(tmp_path, edit, match):
    data = CharTokenizer().fit(["abc"]).to_dict()
    edit(data)
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ValueError, match=match) as caught:
        Tokenizer.load(path)
    assert str(path) in str(caught.value)


def test_hand_edited_bpe_and_word_json_are_refused():
    bpe = BPETokenizer(vocab_size=260, min_frequency=1).fit(["aaaa bbbb"]).to_dict()
    bpe["merges"] = [[0, 99999]]
    with pytest.raises(ValueError):
        Tokenizer.from_dict(bpe)
    word = WordTokenizer().fit(["a b"]).to_dict()
    word["vocab"] = word["vocab"] + word["vocab"][:1]
    with pytest.raises(ValueError, match="duplicate"):
        Tokenizer.from_dict(word)


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"vocab_size": 10, "hidden_size": 0}, "hidden_size"),
        ({"vocab_size": 0}, "vocab_size"),
        ({"vocab_size": 10, "num_layers": 0}, "num_layers"),
    ],
)
def test_impossible_model_configs_are_refused(settings, match):
    with pytest.raises(ValueError, match=match):
        ModelConfig(**settings)


def test_a_one_token_vocabulary_trains_and_samples():
    tokenizer = CharTokenizer().fit(["a"])
    model = LSTMLanguageModel(ModelConfig(vocab_size=tokenizer.vocab_size, hidden_size=8))
    text = Sampler(model, tokenizer).generate("a", max_new_tokens=5, seed=0)[0].text
    assert set(text) <= set(tokenizer.vocab)


def test_a_batch_larger_than_the_corpus_is_refused():
    ids = torch.arange(10).numpy()
    with pytest.raises(ValueError, match="lower batch_size or seq_len"):
        StreamBatcher(ids, batch_size=4, seq_len=8)


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"temperature": -1.0}, "temperature must be > 0"),
        ({"top_p": 0.0}, "top_p"),
        ({"top_p": 1.5}, "top_p"),
        ({"max_new_tokens": -1}, "max_new_tokens"),
        ({"stop": ("",)}, "stop must hold non-empty strings"),
        ({"bad_words": ("",)}, "bad_words must hold non-empty strings"),
    ],
)
def test_absurd_sampling_settings_are_one_line_errors(settings, match):
    with pytest.raises(ValueError, match=match) as caught:
        SampleConfig(**settings)
    assert "\n" not in str(caught.value)


def test_zero_new_tokens_is_an_empty_continuation():
    tokenizer = CharTokenizer().fit(["ab"])
    model = LSTMLanguageModel(ModelConfig(vocab_size=tokenizer.vocab_size, hidden_size=8))
    assert Sampler(model, tokenizer).generate("ab", max_new_tokens=0)[0].text == ""
