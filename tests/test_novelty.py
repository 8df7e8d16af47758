"""novelty: planted copies are found at their exact positions, random text copies nothing."""

import json
import string

import numpy as np
import pytest

from textgen import suffix_array
from textgen.checkpoint import save_checkpoint
from textgen.data import DataConfig
from textgen.model import LSTMLanguageModel, ModelConfig
from textgen.novelty import INDEX_FILE, NoveltyIndex, novelty_report
from textgen.run_config import save_run_data
from textgen.tokenizers import CharTokenizer

LETTERS = string.ascii_lowercase + " "


def random_text(n, alphabet, seed):
    rng = np.random.default_rng(seed)
    return "".join(rng.choice(list(alphabet), n))


# Random letters: no passage repeats, so a copied span cannot extend by chance. The digits
# occur once, so they are in the vocabulary but stop any match that reaches them.
TRAIN = random_text(60_000, LETTERS, 0) + "0123456789\n"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A run folder as `textgen train` leaves it: a checkpoint and data.json, val_fraction 0."""
    root = tmp_path_factory.mktemp("novelty")
    (root / "train.txt").write_text(TRAIN, encoding="utf-8")
    tokenizer = CharTokenizer().fit([TRAIN])
    model = LSTMLanguageModel(ModelConfig(vocab_size=tokenizer.vocab_size, hidden_size=8))
    out = root / "run"
    out.mkdir()
    save_checkpoint(out / "best.pt", model=model, tokenizer=tokenizer)
    data = DataConfig(sources=str(root / "train.txt"), val_fraction=0, cache_dir=str(root / "c"))
    save_run_data(out, data)
    return out


def filler(n, seed):
    return random_text(n, "0123456789", seed)


def test_a_planted_300_character_span_is_found_at_its_exact_position(run):
    copied = TRAIN[31_337 : 31_337 + 300]
    text = filler(100, 1) + copied + filler(50, 2)
    report = novelty_report(run, text)
    longest = report.longest
    assert (longest.text_char, longest.train_char, longest.num_chars) == (100, 31_337, 300)
    assert (longest.text_token, longest.train_token, longest.num_tokens) == (100, 31_337, 300)
    assert longest.text == copied
    assert report.spans == [longest]
    assert report.copied_chars == 300
    assert report.copied_fraction == pytest.approx(300 / 450)
    assert report.summary().startswith(
        "longest copied span 300 chars (300 tokens) at char 100, training char 31337; "
        "copied 66.7% of 450 chars in 1 span of >= 50 chars"
    )


def test_random_text_copies_nothing_longer_than_a_few_characters(run):
    report = novelty_report(run, random_text(3000, LETTERS, 7))
    assert report.longest.num_chars <= 6
    assert report.spans == [] and report.copied_fraction == 0.0


def test_min_span_decides_what_counts_as_copied(run):
    short, long = TRAIN[100:140], TRAIN[5000:5080]
    text = filler(10, 3) + short + filler(10, 4) + long + filler(10, 5)
    index = NoveltyIndex.for_run(run)
    report = index.report(text, min_span=50)
    assert [(s.text_char, s.train_char, s.num_chars) for s in report.spans] == [(60, 5000, 80)]
    report = index.report(text, min_span=30)
    assert [(s.text_char, s.num_chars) for s in report.spans] == [(10, 40), (60, 80)]
    assert report.copied_chars == 120
    as_json = json.loads(json.dumps(report.to_dict()))
    assert as_json["spans"][1]["train_char"] == 5000
    assert sorted(as_json) == sorted(
        [
            "num_chars",
            "num_tokens",
            "min_span",
            "longest",
            "copied_chars",
            "copied_fraction",
            "spans",
        ]
    )


def test_the_index_is_built_once_and_reused(run, monkeypatch):
    first = NoveltyIndex.for_run(run)
    stored = list(run.parent.glob(f"c/*/{INDEX_FILE}"))
    assert len(stored) == 1

    def refuse(*args, **kwargs):
        raise AssertionError("the suffix array was built again")

    monkeypatch.setattr(suffix_array, "build_suffix_array", refuse)
    second = NoveltyIndex.for_run(run / "best.pt")  # a checkpoint in the run folder works too
    assert not second.built
    assert second.search.suffix_array.tolist() == first.search.suffix_array.tolist()


def test_a_given_tokenizer_spares_reading_the_checkpoint_again(run, monkeypatch):
    from textgen import novelty

    tokenizer = novelty.load_checkpoint(run).tokenizer
    expected = NoveltyIndex.for_run(run).report(TRAIN[100:300], min_span=20)

    def refuse(*args, **kwargs):
        raise AssertionError("the checkpoint was read again")

    monkeypatch.setattr(novelty, "load_checkpoint", refuse)
    index = NoveltyIndex.for_run(run, tokenizer=tokenizer)
    assert index.report(TRAIN[100:300], min_span=20) == expected


def test_errors_name_the_problem(run, tmp_path):
    index = NoveltyIndex.for_run(run)
    with pytest.raises(ValueError, match="min_span must be an integer >= 1"):
        index.report("abc", min_span=0)
    with pytest.raises(TypeError, match="text must be a str"):
        index.report(b"abc")
    empty = index.report("")
    assert (empty.longest, empty.copied_fraction, empty.num_chars) == (None, 0.0, 0)
    bare = tmp_path / "bare"
    bare.mkdir()
    model = LSTMLanguageModel(ModelConfig(vocab_size=3, hidden_size=4))
    save_checkpoint(bare / "best.pt", model=model, tokenizer=CharTokenizer().fit(["abc"]))
    with pytest.raises(ValueError, match="has no data.json"):
        NoveltyIndex.for_run(bare)
