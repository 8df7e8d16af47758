"""Sampler and logits processors: exact filter sets, draw frequencies, seeds, stops, streaming, beams."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from _fakes import EOS, FakeByteTokenizer, FakeCharTokenizer, TableModel, TinyLSTM
from textgen.decoding import sample_from_logits
from textgen.options import describe
from textgen.processors import UserProcessors, may_remove_every_token
from textgen.sampler import (
    BannedTokensProcessor,
    FrequencyPenaltyProcessor,
    MinNewTokensProcessor,
    MinPProcessor,
    NoRepeatNGramProcessor,
    PresencePenaltyProcessor,
    RepetitionPenaltyProcessor,
    SampleConfig,
    Sampler,
    TemperatureProcessor,
    TopKProcessor,
    TopPProcessor,
    TypicalProcessor,
    apply_processors,
    build_processors,
    start_token_id,
)
from textgen.tokenizers import UnknownTokenError

NO_IDS = torch.zeros(1, 0, dtype=torch.long)


def kept(logits: torch.Tensor) -> set[int]:
    return set(torch.nonzero(torch.isfinite(logits[0])).flatten().tolist())


def from_probs(probs: list[float]) -> torch.Tensor:
    return torch.tensor([probs]).log()


@pytest.fixture
def tokenizer() -> FakeCharTokenizer:
    return FakeCharTokenizer()


@pytest.fixture
def sampler(tokenizer: FakeCharTokenizer) -> Sampler:
    return Sampler(TinyLSTM(tokenizer.vocab_size), tokenizer)


# -- processors on hand-made logits ------------------------------------------------------------


def test_top_k_keeps_k_best_and_ties() -> None:
    logits = torch.tensor([[1.0, 3.0, 2.0, 0.0]])
    assert kept(TopKProcessor(2)(NO_IDS, logits)) == {1, 2}
    assert kept(TopKProcessor(10)(NO_IDS, logits)) == {0, 1, 2, 3}
    assert kept(TopKProcessor(1)(NO_IDS, torch.tensor([[1.0, 2.0, 2.0]]))) == {1, 2}


@pytest.mark.parametrize(
    ("top_p", "expected"),
    [
        (0.3, {0}),
        (0.5, {0}),
        (0.51, {0, 1}),
        (0.75, {0, 1}),
        (0.81, {0, 1, 2}),
        (1.0, {0, 1, 2, 3}),
    ],
)
def test_top_p_keeps_the_token_that_crosses_the_threshold(top_p: float, expected: set[int]) -> None:
    logits = from_probs([0.5, 0.3, 0.15, 0.05])
    assert kept(TopPProcessor(top_p)(NO_IDS, logits)) == expected


def test_top_p_min_tokens_to_keep() -> None:
    logits = from_probs([0.9, 0.05, 0.03, 0.02])
    assert kept(TopPProcessor(0.5, min_tokens_to_keep=3)(NO_IDS, logits)) == {0, 1, 2}


@pytest.mark.parametrize(
    ("min_p", "expected"), [(0.0, {0, 1, 2, 3}), (0.3, {0, 1, 2}), (0.5, {0, 1}), (1.0, {0})]
)
def test_min_p_scales_by_the_top_probability(min_p: float, expected: set[int]) -> None:
    logits = from_probs([0.4, 0.3, 0.2, 0.1])  # threshold = min_p * 0.4
    assert kept(MinPProcessor(min_p)(NO_IDS, logits)) == expected


@pytest.mark.parametrize(
    ("typical_p", "expected"), [(0.25, {1}), (0.4, {1, 2}), (0.6, {0, 1, 2}), (1.0, {0, 1, 2, 3})]
)
def test_typical_keeps_tokens_closest_to_the_entropy(typical_p: float, expected: set[int]) -> None:
    # Entropy 1.28 nats; |surprisal - entropy| = 0.36, 0.08, 0.33, 1.02 -> order 1, 2, 0, 3.
    logits = from_probs([0.4, 0.3, 0.2, 0.1])
    assert kept(TypicalProcessor(typical_p)(NO_IDS, logits)) == expected


def test_repetition_penalty_divides_positive_and_multiplies_negative() -> None:
    logits = torch.tensor([[2.0, -2.0, 1.0]])
    out = RepetitionPenaltyProcessor(2.0)(torch.tensor([[0, 1, 1]]), logits)
    assert out.tolist() == [[1.0, -4.0, 1.0]]


def test_frequency_and_presence_penalties() -> None:
    ids = torch.tensor([[0, 0, 2]])
    logits = torch.zeros(1, 3)
    assert FrequencyPenaltyProcessor(0.5)(ids, logits).tolist() == [[-1.0, 0.0, -0.5]]
    assert PresencePenaltyProcessor(0.5)(ids, logits).tolist() == [[-0.5, 0.0, -0.5]]


def test_no_repeat_ngram_bans_completing_tokens() -> None:
    ids = torch.tensor([[1, 2, 3, 1, 2], [0, 1, 2, 3, 4]])
    out = NoRepeatNGramProcessor(3)(ids, torch.zeros(2, 5))
    assert kept(out[:1]) == {0, 1, 2, 4}
    assert kept(out[1:]) == {0, 1, 2, 3, 4}
    assert kept(NoRepeatNGramProcessor(1)(ids[:1], torch.zeros(1, 5))) == {0, 4}


def test_banned_tokens_single_and_sequences() -> None:
    processor = BannedTokensProcessor([[3], [1, 2]])
    out = processor(torch.tensor([[0, 1], [1, 0]]), torch.zeros(2, 4))
    assert kept(out[:1]) == {0, 1}
    assert kept(out[1:]) == {0, 1, 2}


def test_min_new_tokens_suppresses_eos_until_reached() -> None:
    processor = MinNewTokensProcessor(2, prompt_length=1, eos_id=3)
    assert kept(processor(torch.tensor([[0, 1]]), torch.zeros(1, 4))) == {0, 1, 2}
    assert kept(processor(torch.tensor([[0, 1, 2]]), torch.zeros(1, 4))) == {0, 1, 2, 3}


def test_processors_leave_inputs_untouched() -> None:
    processors = [
        TemperatureProcessor(0.7),
        TopKProcessor(3),
        TopPProcessor(0.8),
        MinPProcessor(0.1),
        TypicalProcessor(0.9),
        RepetitionPenaltyProcessor(1.3),
        FrequencyPenaltyProcessor(0.4),
        PresencePenaltyProcessor(0.4),
        NoRepeatNGramProcessor(2),
        BannedTokensProcessor([[4], [1, 2]]),
        MinNewTokensProcessor(5, prompt_length=0, eos_id=0),
    ]
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 6, (3, 7), generator=generator)
    logits = torch.randn(3, 6, generator=generator)
    ids_before, logits_before = ids.clone(), logits.clone()
    for processor in processors:
        out = processor(ids, logits)
        assert out.shape == logits.shape
        assert torch.equal(ids, ids_before) and torch.equal(logits, logits_before), processor


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: TemperatureProcessor(0.0), "temperature"),
        (lambda: TopKProcessor(0), "top_k"),
        (lambda: TopPProcessor(0.0), "top_p"),
        (lambda: TopPProcessor(1.5), "top_p"),
        (lambda: MinPProcessor(-0.1), "min_p"),
        (lambda: TypicalProcessor(0.0), "typical_p"),
        (lambda: RepetitionPenaltyProcessor(0.0), "repetition_penalty"),
        (lambda: NoRepeatNGramProcessor(0), "no_repeat_ngram_size"),
        (lambda: BannedTokensProcessor([[]]), "empty"),
        (lambda: FrequencyPenaltyProcessor(float("nan")), "frequency_penalty"),
    ],
)
def test_processors_validate_on_creation(make: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()  # type: ignore[operator]


# -- drawing -------------------------------------------------------------------------------------


def test_one_hot_logits_always_yield_that_token() -> None:
    scores = torch.full((1000, 5), float("-inf"))
    scores[:, 3] = 0.0
    uniforms = torch.rand(1000, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert (sample_from_logits(scores, uniforms) == 3).all()
    tokenizer = FakeCharTokenizer("abcde")
    model = TableModel.constant([float("-inf")] * 3 + [0.0, float("-inf")])
    for result in Sampler(model, tokenizer).generate("a", max_new_tokens=20, num_samples=3, seed=1):
        assert result.text == "d" * 20


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({}, [0.4, 0.3, 0.15, 0.1, 0.05]),
        ({"top_k": 3}, [0.4 / 0.85, 0.3 / 0.85, 0.15 / 0.85, 0.0, 0.0]),
        ({"top_p": 0.8}, [0.4 / 0.85, 0.3 / 0.85, 0.15 / 0.85, 0.0, 0.0]),
        ({"min_p": 0.3}, [0.4 / 0.85, 0.3 / 0.85, 0.15 / 0.85, 0.0, 0.0]),
        ({"temperature": 0.5, "top_k": 2}, [16 / 25, 9 / 25, 0.0, 0.0, 0.0]),
    ],
)
def test_20000_draws_match_the_filtered_distribution(options: dict, expected: list[float]) -> None:
    # 2,000 rows x 10 steps through the whole Sampler on a model with a fixed next-token distribution.
    tokenizer = FakeCharTokenizer("abcde")
    model = TableModel.constant(torch.tensor([0.4, 0.3, 0.15, 0.1, 0.05]).log().tolist())
    results = Sampler(model, tokenizer).generate(
        "a", max_new_tokens=10, num_samples=2000, seed=0, **options
    )
    text = "".join(r.text for r in results)
    assert len(text) == 20_000
    for char, p in zip("abcde", expected, strict=True):
        frequency = text.count(char) / len(text)
        tolerance = 5 * math.sqrt(max(p * (1 - p), 1e-12) / len(text))
        assert abs(frequency - p) <= tolerance, (char, frequency, p)


# -- generation ----------------------------------------------------------------------------------


def manual_greedy(model: TinyLSTM, ids: list[int], steps: int) -> list[int]:
    out = []
    with torch.no_grad():
        for _ in range(steps):
            logits, _ = model(torch.tensor([ids + out]))  # full recompute: the reference
            out.append(int(logits[0, -1].argmax()))
    return out


def test_greedy_equals_argmax_and_top_k_1(sampler: Sampler, tokenizer: FakeCharTokenizer) -> None:
    greedy = sampler.generate("abc", greedy=True, max_new_tokens=12)[0]
    assert greedy.token_ids == manual_greedy(sampler.model, tokenizer.encode("abc"), 12)  # type: ignore[arg-type]
    assert sampler.generate("abc", top_k=1, max_new_tokens=12, seed=5)[0].text == greedy.text
    assert len(greedy.text) == 12 and greedy.finish_reason == "length"


def test_prompt_runs_once_then_one_step_per_token(sampler: Sampler) -> None:
    model = sampler.model
    model.calls.clear()  # type: ignore[union-attr]
    sampler.generate("abcd", max_new_tokens=6, num_samples=3, seed=0)
    assert model.calls == [(1, 4)] + [(3, 1)] * 5  # type: ignore[union-attr]


def test_eval_and_inference_mode_restore_training_flag(sampler: Sampler) -> None:
    model = sampler.model
    model.train()
    model.training_flags.clear()  # type: ignore[union-attr]
    pieces = sampler.stream("ab", max_new_tokens=3, seed=0)
    assert (
        next(pieces) and model.training and torch.is_grad_enabled()
    )  # nothing leaks between pieces
    list(pieces)
    sampler.generate("ab", max_new_tokens=3, seed=0)
    assert model.training and not any(model.training_flags)  # type: ignore[union-attr]


def test_same_seed_same_text_and_global_rng_untouched(sampler: Sampler) -> None:
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a = sampler.generate("ab", max_new_tokens=40, seed=7, top_p=0.95)[0].text
    b = sampler.generate("ab", max_new_tokens=40, seed=7, top_p=0.95)[0].text
    c = sampler.generate("ab", max_new_tokens=40, seed=8, top_p=0.95)[0].text
    sampler.generate("ab", max_new_tokens=5)  # unseeded: still its own generator
    assert a == b and a != c
    assert torch.equal(torch.get_rng_state(), before)


def test_batched_sample_i_equals_single_run_with_seed_plus_i(sampler: Sampler) -> None:
    options = {"max_new_tokens": 30, "temperature": 0.9, "top_k": 8, "repetition_penalty": 1.2}
    batch = sampler.generate("a b", num_samples=4, seed=10, **options)
    singles = [sampler.generate("a b", seed=10 + i, **options)[0] for i in range(4)]
    assert [r.text for r in batch] == [r.text for r in singles]
    assert len({r.text for r in batch}) > 1


def test_stop_string_spanning_tokens_cuts_before_it() -> None:
    tokenizer = FakeCharTokenizer("abcdefgh")
    model = TableModel.script(tokenizer, dict(zip("abcdefgh", "bcdefgha", strict=True)))
    sampler = Sampler(model, tokenizer)
    result = sampler.generate("a", max_new_tokens=20, stop=("efg", "zz"))[0]
    assert (result.text, result.finish_reason) == ("bcd", "stop")
    assert result.token_ids == tokenizer.encode("bcdefg")  # up to the token completing the stop
    assert sampler.generate("a", max_new_tokens=20, stop=["hab", "def"])[0].text == "bc"
    assert sampler.generate("a", max_new_tokens=20, stop="b")[0].text == ""
    assert sampler.generate("a", max_new_tokens=4, stop="fgh")[0].text == "bcde"  # never reached
    pieces = list(sampler.stream("a", max_new_tokens=20, stop=("efg",)))
    assert "".join(pieces) == "bcd" and not any("e" in p for p in pieces)


def test_eos_ends_each_row_on_its_own() -> None:
    tokenizer = FakeCharTokenizer("a", eos=True)
    model = TableModel.constant([math.log(0.8), math.log(0.2)])
    sampler = Sampler(model, tokenizer)
    results = sampler.generate("", max_new_tokens=50, num_samples=8, seed=3)
    assert all(r.finish_reason == "eos" and set(r.text) <= {"a"} for r in results)
    assert len({len(r.text) for r in results}) > 1
    assert [r.text for r in results] == [
        sampler.generate(seed=3 + i, max_new_tokens=50)[0].text for i in range(8)
    ]
    at_least = sampler.generate("", max_new_tokens=50, num_samples=8, seed=3, min_new_tokens=6)
    assert all(len(r.text) >= 6 for r in at_least)


@pytest.mark.parametrize("stop", [(), ("cab", " h")])
def test_stream_joined_equals_generate(sampler: Sampler, stop: tuple[str, ...]) -> None:
    options = {"max_new_tokens": 60, "seed": 4, "stop": stop, "temperature": 1.5}
    pieces = list(sampler.stream("ab", **options))
    assert "".join(pieces) == sampler.generate("ab", **options)[0].text
    assert len(pieces) > 1


def test_stream_holds_back_split_multibyte_characters() -> None:
    tokenizer = FakeByteTokenizer()
    e1, e2 = "é".encode()
    table = torch.full((256, 256), -30.0)
    table[ord("x"), e1] = table[e1, e2] = table[e2, ord("x")] = 30.0
    sampler = Sampler(TableModel(table), tokenizer)
    pieces = list(sampler.stream("x", max_new_tokens=7, greedy=True))
    assert "".join(pieces) == "éxéx" + "\ufffd" and "\ufffd" not in "".join(pieces[:-1])
    assert sampler.generate("x", max_new_tokens=7, greedy=True)[0].text == "éxéx\ufffd"
    assert pieces[0] == "é"


def test_logprobs_and_score_agree(sampler: Sampler) -> None:
    result = sampler.generate("", max_new_tokens=15, seed=2, return_logprobs=True)[0]
    assert result.logprobs is not None and len(result.logprobs) == len(result.token_ids) == 15
    assert all(lp <= 0 for lp in result.logprobs)
    assert sampler.score(result.text) == pytest.approx(result.logprobs, abs=1e-5)
    with_prompt = sampler.generate("ab", max_new_tokens=5, seed=2, return_logprobs=True)[0]
    assert sampler.score(with_prompt.text, prompt="ab") == pytest.approx(
        with_prompt.logprobs, abs=1e-5
    )


def test_beam_width_1_equals_greedy(sampler: Sampler) -> None:
    greedy = sampler.generate("ab", greedy=True, max_new_tokens=20)[0]
    beam = sampler.beam_search("ab", max_new_tokens=20, num_beams=1)[0]
    assert beam.token_ids == greedy.token_ids


def test_wide_beam_finds_the_most_probable_sequence() -> None:
    tokenizer = FakeCharTokenizer("abc")
    sampler = Sampler(TinyLSTM(3, seed=1), tokenizer)
    best = max(
        ("".join(s) for s in itertools.product("abc", repeat=3)),
        key=lambda s: sum(sampler.score(s, prompt="a")),
    )
    results = sampler.generate(
        "a", num_beams=9, num_samples=3, max_new_tokens=3, length_penalty=0.0
    )
    assert results[0].text == best
    assert [r.score for r in results] == sorted((r.score for r in results), reverse=True)  # type: ignore[type-var]
    assert results[0].score == pytest.approx(sum(sampler.score(best, prompt="a")), abs=1e-5)


def test_beam_search_stops_at_eos() -> None:
    tokenizer = FakeCharTokenizer("abc", eos=True)
    model = TableModel.script(tokenizer, {"a": "b", "b": "c", "c": EOS})
    result = Sampler(model, tokenizer).beam_search("a", num_beams=3, max_new_tokens=10)[0]
    assert (result.text, result.finish_reason) == ("bc", "eos")


def test_bad_words_are_never_produced(sampler: Sampler) -> None:
    text = "".join(
        r.text
        for r in sampler.generate(
            "a", max_new_tokens=40, num_samples=5, seed=0, bad_words=["a", "bc"]
        )
    )
    assert "a" not in text and "bc" not in text


def test_no_repeat_ngram_in_generation(sampler: Sampler) -> None:
    for result in sampler.generate(
        "ab", max_new_tokens=40, num_samples=3, seed=0, no_repeat_ngram_size=2, greedy=False
    ):
        ids = sampler.tokenizer.encode("ab" + result.text)
        pairs = list(itertools.pairwise(ids))
        assert len(pairs) == len(set(pairs))


def test_empty_prompt_start_token() -> None:
    assert start_token_id(FakeCharTokenizer("ab", eos=True)) == 2
    assert start_token_id(FakeCharTokenizer("ab\n")) == 2
    assert start_token_id(FakeCharTokenizer("ab")) == 0
    assert start_token_id(FakeCharTokenizer("a\nb", eos=True)) == 1  # newline before eos
    tokenizer = FakeCharTokenizer("ab\n")
    model = TinyLSTM(3)
    Sampler(model, tokenizer).generate("", max_new_tokens=2)
    assert model.calls[0] == (1, 1)


def test_unencodable_prompt_names_the_character(sampler: Sampler) -> None:
    with pytest.raises(UnknownTokenError, match=r"prompt 'abZ'.*'Z' at position 2"):
        sampler.generate("abZ")
    with pytest.raises(UnknownTokenError, match="'Z'"):
        sampler.stream("Z")


def test_max_new_tokens_respected(sampler: Sampler) -> None:
    assert [len(r.token_ids) for r in sampler.generate(max_new_tokens=7, num_samples=3)] == [
        7,
        7,
        7,
    ]
    assert sampler.generate("a", max_new_tokens=0)[0].text == ""


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"temperature": 0}, ValueError, "temperature"),
        ({"top_k": 0}, ValueError, "top_k"),
        ({"top_k": True}, TypeError, "top_k"),
        ({"top_p": 1.5}, ValueError, "top_p"),
        ({"min_p": 2.0}, ValueError, "min_p"),
        ({"typical_p": 0.0}, ValueError, "typical_p"),
        ({"repetition_penalty": -1.0}, ValueError, "repetition_penalty"),
        ({"max_new_tokens": -1}, ValueError, "max_new_tokens"),
        ({"min_new_tokens": 5, "max_new_tokens": 4}, ValueError, "min_new_tokens"),
        ({"num_samples": 0}, ValueError, "num_samples"),
        ({"num_beams": 2, "num_samples": 3}, ValueError, "num_samples"),
        ({"stop": [""]}, ValueError, "stop"),
        ({"stop": [3]}, TypeError, "stop"),
        ({"seed": -1}, ValueError, "seed"),
        ({"greedy": 1}, TypeError, "greedy"),
    ],
)
def test_bad_config_raises_clear_errors(options: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        SampleConfig(**options)


def test_bad_call_arguments(sampler: Sampler) -> None:
    with pytest.raises(TypeError, match="top_z"):
        sampler.generate("a", top_z=3)
    with pytest.raises(ValueError, match="num_samples"):
        sampler.stream("a", num_samples=2)
    with pytest.raises(TypeError, match="tokenizer"):
        Sampler(sampler.model, "abc")  # type: ignore[arg-type]


def test_build_processors_order_and_greedy() -> None:
    tokenizer = FakeCharTokenizer("abc", eos=True)
    config = SampleConfig(
        temperature=0.5,
        top_k=5,
        top_p=0.9,
        min_p=0.1,
        typical_p=0.9,
        repetition_penalty=1.1,
        bad_words=("ab",),
        min_new_tokens=2,
    )
    names = [type(p).__name__ for p in build_processors(config, tokenizer)]
    assert names == [
        "RepetitionPenaltyProcessor",
        "BannedStringsProcessor",
        "MinNewTokensProcessor",
        "TemperatureProcessor",
        "TopKProcessor",
        "TopPProcessor",
        "MinPProcessor",
        "TypicalProcessor",
    ]
    greedy = build_processors(SampleConfig(temperature=0.5, top_k=5, greedy=True), tokenizer)
    assert greedy == []
    assert build_processors(SampleConfig()) == []
    logits = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    assert torch.equal(apply_processors([], NO_IDS, logits), logits)


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda: TopKProcessor(2.5), TypeError, "top_k must be an integer, got float 2.5"),
        (lambda: TemperatureProcessor("hot"), TypeError, "temperature must be a number"),
        (lambda: TemperatureProcessor(0), ValueError, "temperature must be > 0.*greedy"),
        (lambda: TopPProcessor(1.5), ValueError, r"top_p must be a number in \(0, 1\], got 1.5"),
        (lambda: BannedTokensProcessor("ab"), TypeError, "sequences of token-id|token-id seq"),
        (lambda: BannedTokensProcessor([[-1]]), ValueError, "banned token id must be"),
    ],
)
def test_processor_errors_name_the_parameter_and_value(
    make: object, error: type, message: str
) -> None:
    with pytest.raises(error, match=message):
        make()  # type: ignore[operator]


def test_sample_config_fields_keep_their_names_and_defaults_and_all_have_help() -> None:
    infos = describe(SampleConfig)
    assert {i.name: i.default for i in infos} == {
        "max_new_tokens": 200,
        "min_new_tokens": 0,
        "temperature": 1.0,
        "top_k": None,
        "top_p": None,
        "min_p": None,
        "typical_p": None,
        "repetition_penalty": 1.0,
        "frequency_penalty": 0.0,
        "presence_penalty": 0.0,
        "no_repeat_ngram_size": 0,
        "bad_words": (),
        "stop": (),
        "greedy": False,
        "num_samples": 1,
        "num_beams": 1,
        "length_penalty": 1.0,
        "seed": None,
        "return_logprobs": False,
    }
    assert all(i.help and "\n" not in i.help for i in infos)
    assert {i.name: i.cli_flag for i in infos}["bad_words"] == "--ban"  # the existing flag


# -- the caller's logits processors --------------------------------------------------------------


class Recorder:
    """A plain user processor (not a LogitsProcessor) recording what it is given."""

    def __init__(self) -> None:
        self.input_ids: list[torch.Tensor] = []
        self.scores: list[torch.Tensor] = []

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        self.input_ids.append(input_ids.clone())
        self.scores.append(scores.clone())
        return scores


def test_user_processors_run_after_the_built_in_ones_on_the_tokens_so_far(
    sampler: Sampler, tokenizer: FakeCharTokenizer
) -> None:
    recorder = Recorder()
    results = sampler.generate(
        "ab", max_new_tokens=5, num_samples=2, seed=0, top_k=2, logits_processors=[recorder]
    )
    assert len(recorder.scores) == 5
    assert all((torch.isfinite(s).sum(dim=-1) == 2).all() for s in recorder.scores)  # after top-k
    prompt = tokenizer.encode("ab")
    assert [tuple(ids.shape) for ids in recorder.input_ids] == [(2, 2 + i) for i in range(5)]
    assert recorder.input_ids[0].dtype == torch.long
    assert recorder.input_ids[-1][:, :2].tolist() == [prompt, prompt]
    assert [ids[2:].tolist() for ids in recorder.input_ids[-1]] == [
        r.token_ids[:4] for r in results
    ]


def test_a_processor_that_passes_scores_through_changes_nothing(sampler: Sampler) -> None:
    options = {"max_new_tokens": 20, "seed": 3, "top_p": 0.9, "stop": ("ca",)}
    plain = sampler.generate("ab", **options)[0]
    assert sampler.generate("ab", logits_processors=[Recorder()], **options)[0] == plain

    def careless(input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        input_ids.view(-1).zero_()  # a contiguous copy: viewing works, writing harms nothing
        return scores

    options["repetition_penalty"] = 1.5  # reads the ids at every step
    plain = sampler.generate("ab", num_samples=2, **options)
    assert sampler.generate("ab", num_samples=2, logits_processors=[careless], **options) == plain
    beams = sampler.beam_search("ab", max_new_tokens=8, num_beams=3)
    assert (
        sampler.beam_search("ab", max_new_tokens=8, num_beams=3, logits_processors=[Recorder()])
        == beams
    )


@pytest.mark.parametrize(
    ("processors", "message"),
    [
        ([3], r"logits_processors\[0\] must be callable.*got int 3"),
        ([Recorder(), "ban"], r"logits_processors\[1\] must be callable.*got str"),
        (Recorder(), "wrap a single processor in a list"),
        (None, "logits_processors must be a list"),
    ],
)
def test_bad_logits_processors_raise_type_error_at_the_call(
    sampler: Sampler, processors: object, message: str
) -> None:
    for call in (sampler.generate, sampler.stream, sampler.beam_search):
        with pytest.raises(TypeError, match=message):
            call("ab", max_new_tokens=3, logits_processors=processors)  # type: ignore[operator]
    with pytest.raises(TypeError, match=message):
        sampler.generate("ab", num_beams=2, logits_processors=processors)  # type: ignore[arg-type]


def test_a_processor_returning_bad_scores_is_named(sampler: Sampler) -> None:
    with pytest.raises(TypeError, match=r"logits_processors\[1\] must return scores.*NoneType"):
        sampler.generate("ab", logits_processors=[Recorder(), lambda ids, scores: None])
    with pytest.raises(ValueError, match=r"logits_processors\[0\] must return scores of shape"):
        sampler.generate("ab", logits_processors=[lambda ids, scores: scores[:, :3]])


def test_a_user_processor_that_removes_every_token_fails_clearly(sampler: Sampler) -> None:
    def nothing(input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        return torch.full_like(scores, float("-inf"))

    with pytest.raises(ValueError, match="removed every token at new token 1"):
        sampler.generate("ab", max_new_tokens=4, logits_processors=[nothing])
    with pytest.raises(ValueError, match="removed every token at new token 1"):
        sampler.beam_search("ab", max_new_tokens=4, num_beams=2, logits_processors=[nothing])


def test_the_emptied_row_check_runs_only_with_processors_that_can_empty_a_row(
    sampler: Sampler, monkeypatch: pytest.MonkeyPatch
) -> None:
    tokenizer = FakeCharTokenizer("abc", eos=True)
    filters = SampleConfig(
        temperature=0.5,
        top_k=2,
        top_p=0.9,
        min_p=0.1,
        typical_p=0.9,
        repetition_penalty=1.2,
        frequency_penalty=0.1,
        presence_penalty=0.1,
    )
    assert not may_remove_every_token(build_processors(filters, tokenizer))
    for risky in ({"bad_words": ("a",)}, {"no_repeat_ngram_size": 2}, {"min_new_tokens": 2}):
        assert may_remove_every_token(build_processors(SampleConfig(**risky), tokenizer))
    assert may_remove_every_token([Recorder()])  # a user's processor is checked by default...
    gentle = Recorder()
    gentle.may_remove_every_token = False  # type: ignore[attr-defined]
    assert not may_remove_every_token([UserProcessors([gentle])])  # ...unless it says otherwise

    checks = []
    isneginf = torch.isneginf
    monkeypatch.setattr(torch, "isneginf", lambda x: checks.append(1) or isneginf(x))
    sampler.generate("ab", max_new_tokens=6, seed=0, top_k=3, temperature=0.7, top_p=0.9)
    assert checks == []  # no device sync per token for filters that always keep a token
    sampler.generate("ab", max_new_tokens=6, seed=0, bad_words=["a"])
    assert len(checks) == 6


# -- Hugging Face aliases -----------------------------------------------------------------------


def test_hugging_face_aliases_mean_their_fields(sampler: Sampler) -> None:
    greedy = sampler.generate("ab", max_new_tokens=8, greedy=True)
    assert sampler.generate("ab", max_new_tokens=8, do_sample=False) == greedy
    sampled = sampler.generate("ab", max_new_tokens=8, seed=3, num_samples=3)
    aliased = sampler.generate(
        "ab", max_new_tokens=8, seed=3, do_sample=True, num_return_sequences=3
    )
    assert aliased == sampled and len(aliased) == 3
    # Consistent duplicates are fine; contradictions name both.
    assert len(sampler.generate("ab", max_new_tokens=2, num_samples=2, num_return_sequences=2)) == 2
    with pytest.raises(ValueError, match="do_sample=True contradicts greedy=True"):
        sampler.generate("ab", do_sample=True, greedy=True)
    with pytest.raises(ValueError, match="num_return_sequences=2 contradicts num_samples=3"):
        sampler.generate("ab", num_return_sequences=2, num_samples=3)
    with pytest.raises(ValueError, match="beam sampling"):
        sampler.generate("ab", do_sample=True, num_beams=2)
    with pytest.raises(TypeError, match="do_sample"):
        sampler.generate("ab", do_sample="yes")
    beams = sampler.generate(
        "ab", max_new_tokens=4, do_sample=False, num_beams=3, num_return_sequences=2
    )
    assert beams == sampler.beam_search("ab", max_new_tokens=4, num_beams=3, num_samples=2)
