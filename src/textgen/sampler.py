"""Sampling: turn a trained model and its tokenizer into text, the last step of the flow.

prompt -> ``encode`` -> the model runs over the whole prompt ONCE to warm its recurrent state ->
last-step logits ``(B, V)`` -> logits processors (`textgen.processors`) -> next token, drawn with
a per-call ``torch.Generator`` -> fed back with the carried state, so each new token costs one
model step whatever the length of the text so far. `Sampler` offers `Sampler.generate` (batched:
``num_samples`` rows advance together, each with its own stop condition), `Sampler.stream` (text
pieces as they are produced), `Sampler.beam_search` and `Sampler.score` (per-token log-probs).

Conventions:
    * Empty prompt: the model starts from one start token, ``tokenizer.eos_id`` when the tokenizer
      has one, else the id of ``"\\n"`` when that encodes to a single token, else id 0 (see
      `start_token_id`). The start token is model input only: it is not part of the text nor of
      the ``input_ids`` processors see.
    * Seeds: row ``i`` of a call with ``seed=s`` uses its own generator seeded with ``s + i``, so
      sample ``i`` of a batch equals a one-sample call with ``seed=s + i`` (same device), and the
      global RNG is never touched. Without a seed, a fresh seed comes from ``os.urandom``.
    * Output: ``Generation.text`` is the continuation only (no prompt), cut before the earliest
      stop string; the end-of-sequence token is never included.
"""

from __future__ import annotations

import codecs
import dataclasses
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from textgen.beam import beam_search as _beam_search
from textgen.model import State, select_state
from textgen.processors import (
    BannedTokensProcessor,
    FrequencyPenaltyProcessor,
    LogitsProcessor,
    MinNewTokensProcessor,
    MinPProcessor,
    NoRepeatNGramProcessor,
    PresencePenaltyProcessor,
    RepetitionPenaltyProcessor,
    TemperatureProcessor,
    TopKProcessor,
    TopPProcessor,
    TypicalProcessor,
    _check_float,
    _check_int,
    apply_processors,
)
from textgen.runtime import resolve_device
from textgen.tokenizers import Tokenizer, UnknownTokenError

__all__ = [
    "BannedTokensProcessor",
    "FrequencyPenaltyProcessor",
    "Generation",
    "LogitsProcessor",
    "MinNewTokensProcessor",
    "MinPProcessor",
    "NoRepeatNGramProcessor",
    "PresencePenaltyProcessor",
    "RepetitionPenaltyProcessor",
    "SampleConfig",
    "Sampler",
    "TemperatureProcessor",
    "TopKProcessor",
    "TopPProcessor",
    "TypicalProcessor",
    "apply_processors",
    "build_processors",
    "start_token_id",
]

FinishReason = Literal["length", "eos", "stop"]

# Uniform numbers are drawn per row in blocks: one generator call per row every _BLOCK tokens keeps
# the per-token loop free of per-row Python work while each row still owns its random stream.
_BLOCK = 64


def _string_tuple(name: str, value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        value = (value,)
    if not isinstance(value, (tuple, list)) or not all(isinstance(v, str) for v in value):
        raise TypeError(f"{name} must be a sequence of non-empty strings, got {value!r}")
    if not all(value):
        raise ValueError(f"{name} must hold non-empty strings, got {value!r}")
    return tuple(value)


@dataclass(frozen=True)
class SampleConfig:
    """How to sample. Defaults: plain sampling at temperature 1, every filter off.

    ``None`` (or the neutral value) turns a filter or penalty off. ``greedy=True`` and beam search
    (``num_beams > 1``) ignore the sampling-only fields (temperature, top_k, top_p, min_p,
    typical_p, seed), as in Hugging Face ``generate()``.

    Attributes:
        max_new_tokens: most tokens to generate (>= 0).
        min_new_tokens: the end-of-sequence token is forbidden before this many new tokens.
        temperature: logits are divided by it (> 0).
        top_k: keep the k most likely tokens (>= 1).
        top_p: nucleus sampling mass, in (0, 1].
        min_p: keep tokens with probability >= min_p * top probability, in [0, 1].
        typical_p: locally typical sampling mass, in (0, 1].
        repetition_penalty: > 0; 1 is off; > 1 discourages tokens already present.
        frequency_penalty: subtracted once per previous occurrence of a token.
        presence_penalty: subtracted once from every token already present.
        no_repeat_ngram_size: forbid repeating any n-gram of this size (0 is off).
        bad_words: strings never to produce (each encoded once with the tokenizer).
        stop: stop strings; the output is cut before the earliest one.
        greedy: always take the most likely token.
        num_samples: sequences per call (for beam search: best beams returned, <= num_beams).
        num_beams: beam width; > 1 makes `Sampler.generate` run beam search.
        length_penalty: beam score = sum of log-probs / length ** length_penalty.
        seed: per-call seed (row i uses seed + i); None draws a fresh one.
        return_logprobs: also return each token's log-probability under the model.
    """

    max_new_tokens: int = 200
    min_new_tokens: int = 0
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    min_p: float | None = None
    typical_p: float | None = None
    repetition_penalty: float = 1.0
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    no_repeat_ngram_size: int = 0
    bad_words: tuple[str, ...] = ()
    stop: tuple[str, ...] = ()
    greedy: bool = False
    num_samples: int = 1
    num_beams: int = 1
    length_penalty: float = 1.0
    seed: int | None = None
    return_logprobs: bool = False

    def __post_init__(self) -> None:
        _check_int("max_new_tokens", self.max_new_tokens, 0)
        _check_int("min_new_tokens", self.min_new_tokens, 0)
        if self.min_new_tokens > self.max_new_tokens:
            raise ValueError(
                f"min_new_tokens ({self.min_new_tokens}) must be <= max_new_tokens "
                f"({self.max_new_tokens})"
            )
        # Building each processor validates its field with an error that names it.
        TemperatureProcessor(self.temperature)
        if self.top_k is not None:
            TopKProcessor(self.top_k)
        if self.top_p is not None:
            TopPProcessor(self.top_p)
        if self.min_p is not None:
            MinPProcessor(self.min_p)
        if self.typical_p is not None:
            TypicalProcessor(self.typical_p)
        RepetitionPenaltyProcessor(self.repetition_penalty)
        FrequencyPenaltyProcessor(self.frequency_penalty)
        PresencePenaltyProcessor(self.presence_penalty)
        _check_int("no_repeat_ngram_size", self.no_repeat_ngram_size, 0)
        object.__setattr__(self, "bad_words", _string_tuple("bad_words", self.bad_words))
        object.__setattr__(self, "stop", _string_tuple("stop", self.stop))
        for name in ("greedy", "return_logprobs"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be True or False, got {getattr(self, name)!r}")
        _check_int("num_samples", self.num_samples, 1)
        _check_int("num_beams", self.num_beams, 1)
        if self.num_beams > 1 and self.num_samples > self.num_beams:
            raise ValueError(
                f"num_samples ({self.num_samples}) must be <= num_beams ({self.num_beams}) "
                "for beam search"
            )
        _check_float("length_penalty", self.length_penalty)
        if self.seed is not None:
            _check_int("seed", self.seed, 0)


@dataclass
class Generation:
    """One generated sequence.

    Attributes:
        text: the continuation (prompt excluded), cut before the earliest stop string.
        token_ids: the generated ids (end-of-sequence excluded; with a stop string, up to and
            including the token that completed it, so they may decode past ``text``).
        finish_reason: ``"length"`` (max_new_tokens), ``"eos"`` or ``"stop"`` (a stop string).
        logprobs: with ``return_logprobs``, the log-probability of each id in ``token_ids`` under
            the model's own distribution (before processors), else None.
        score: beam search only: sum of processed log-probs / length ** length_penalty.
    """

    text: str
    token_ids: list[int]
    finish_reason: FinishReason
    logprobs: list[float] | None = None
    score: float | None = field(default=None)


def start_token_id(tokenizer: Tokenizer) -> int:
    """The token an empty prompt starts from: ``"\\n"`` if it is a single token, else ``eos_id``
    if any, else 0.

    A newline comes first because the model has seen it start lines and speeches; textgen's data
    pipeline does not put end-of-text markers into the training stream, so an ``eos`` embedding
    may never have been trained.
    """
    try:
        newline = tokenizer.encode("\n")
    except ValueError:
        newline = []
    if len(newline) == 1:
        return newline[0]
    return tokenizer.eos_id if tokenizer.eos_id is not None else 0


def build_processors(
    config: SampleConfig, tokenizer: Tokenizer | None = None, *, prompt_length: int = 0
) -> list[LogitsProcessor]:
    """The processors ``config`` asks for, in Hugging Face's order: penalties and bans first,
    then (when sampling) temperature, top-k, top-p, min-p, typical.

    Args:
        config: the sampling settings.
        tokenizer: needed to encode ``bad_words`` and to find the end-of-sequence id for
            ``min_new_tokens`` (without an ``eos_id`` that field has nothing to suppress).
        prompt_length: tokens of prompt in ``input_ids`` (for ``min_new_tokens``).

    Raises:
        ValueError: ``bad_words`` given without a tokenizer, or one cannot be encoded.
    """
    processors: list[LogitsProcessor] = []
    if config.repetition_penalty != 1.0:
        processors.append(RepetitionPenaltyProcessor(config.repetition_penalty))
    if config.frequency_penalty != 0.0:
        processors.append(FrequencyPenaltyProcessor(config.frequency_penalty))
    if config.presence_penalty != 0.0:
        processors.append(PresencePenaltyProcessor(config.presence_penalty))
    if config.no_repeat_ngram_size > 0:
        processors.append(NoRepeatNGramProcessor(config.no_repeat_ngram_size))
    if config.bad_words:
        if tokenizer is None:
            raise ValueError("bad_words needs a tokenizer to encode them")
        processors.append(
            BannedTokensProcessor([_encode(tokenizer, w, "bad word") for w in config.bad_words])
        )
    if config.min_new_tokens > 0 and tokenizer is not None and tokenizer.eos_id is not None:
        processors.append(
            MinNewTokensProcessor(config.min_new_tokens, prompt_length, tokenizer.eos_id)
        )
    if config.greedy or config.num_beams > 1:
        return processors
    if config.temperature != 1.0:
        processors.append(TemperatureProcessor(config.temperature))
    if config.top_k is not None:
        processors.append(TopKProcessor(config.top_k))
    if config.top_p is not None and config.top_p < 1.0:
        processors.append(TopPProcessor(config.top_p))
    if config.min_p is not None and config.min_p > 0.0:
        processors.append(MinPProcessor(config.min_p))
    if config.typical_p is not None and config.typical_p < 1.0:
        processors.append(TypicalProcessor(config.typical_p))
    return processors


def _encode(tokenizer: Tokenizer, text: str, what: str) -> list[int]:
    try:
        return tokenizer.encode(text)
    except UnknownTokenError as error:
        raise UnknownTokenError(f"{what} {text!r} cannot be encoded: {error}") from error


def _sample_from_logits(scores: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
    """Inverse-CDF draw: row ``b`` takes the token where its CDF first exceeds ``uniforms[b]``.

    Args:
        scores: ``(B, V)`` float logits (``-inf`` = removed).
        uniforms: ``(B, 1)`` float64 in ``[0, 1)``.

    Returns:
        ``(B,)`` int64 ids, each with non-zero probability.
    """
    # float64 CDF: u * total < total exactly, so right=True never lands past the last kept token.
    cdf = scores.softmax(dim=-1).cumsum(dim=-1, dtype=torch.float64)
    picked = torch.searchsorted(cdf, uniforms * cdf[:, -1:], right=True)
    return picked.squeeze(1).clamp_(max=scores.shape[-1] - 1)


class _Run:
    """The state of one batched decoding: model state, last logits, tokens so far, finished rows."""

    def __init__(
        self,
        model: nn.Module,
        model_input: list[int],
        history: list[int],
        *,
        num_rows: int,
        max_new_tokens: int,
        processors: list[LogitsProcessor],
        greedy: bool,
        seeds: list[int],
        eos_id: int | None,
        want_logprobs: bool,
    ) -> None:
        device = next(iter(model.parameters())).device
        ids = torch.tensor([model_input], dtype=torch.long, device=device)
        logits, state = model(ids, None)  # the prompt, once
        rows = torch.zeros(num_rows, dtype=torch.long, device=device)
        self.model = model
        self.state = select_state(state, rows)
        self.logits = logits[:, -1].float().expand(num_rows, -1)
        self.prompt_length = len(history)
        self.length = len(history)
        self.tokens = torch.empty(
            num_rows, len(history) + max_new_tokens, dtype=torch.long, device=device
        )
        self.tokens[:, : len(history)] = torch.tensor(history, dtype=torch.long, device=device)
        self.finished = torch.zeros(num_rows, dtype=torch.bool, device=device)
        self.logprobs = (
            torch.empty(num_rows, max_new_tokens, device=device) if want_logprobs else None
        )
        self.processors = processors
        self.greedy = greedy
        self.eos_id = eos_id
        self.generators = (
            [] if greedy else [torch.Generator(device=device).manual_seed(s) for s in seeds]
        )
        self._uniforms = torch.empty(0)
        self._pending: torch.Tensor | None = None

    def step(self) -> torch.Tensor:
        """Produce one token per row; returns ``(B,)`` int64 (finished rows repeat ``eos_id``)."""
        if self._pending is not None:  # feed last step's token only when its successor is wanted
            logits, self.state = self.model(self._pending[:, None], self.state)
            self.logits = logits[:, -1].float()
        scores = self.logits
        step = self.length - self.prompt_length
        if self.processors:
            scores = apply_processors(self.processors, self.tokens[:, : self.length], scores)
            if bool(torch.isneginf(scores).all(dim=-1).any()):
                raise ValueError(
                    f"the sampling settings removed every token at new token {step + 1} (e.g. "
                    "banned strings or no_repeat_ngram_size leave nothing to choose); relax them"
                )
        if self.greedy:
            next_ids = scores.argmax(dim=-1)
        else:
            column = step % _BLOCK
            if column == 0:
                device = scores.device
                self._uniforms = torch.stack(
                    [
                        torch.rand(_BLOCK, generator=g, device=device, dtype=torch.float64)
                        for g in self.generators
                    ]
                )
            next_ids = _sample_from_logits(scores, self._uniforms[:, column : column + 1])
        if self.logprobs is not None:
            log_probs = self.logits.log_softmax(dim=-1)
            self.logprobs[:, step] = log_probs.gather(1, next_ids[:, None]).squeeze(1)
        if self.eos_id is not None:
            next_ids = next_ids.masked_fill(self.finished, self.eos_id)
            self.finished |= next_ids == self.eos_id
        self.tokens[:, self.length] = next_ids
        self.length += 1
        self._pending = next_ids
        return next_ids


def _find_stop(text: str, stops: Sequence[str]) -> int | None:
    """Index of the earliest stop string in ``text``, or None."""
    hits = [i for i in (text.find(s) for s in stops) if i >= 0]
    return min(hits) if hits else None


def _held_back(text: str, stops: Sequence[str]) -> int:
    """Length of the longest suffix of ``text`` that could be the start of a stop string."""
    for size in range(min(len(text), max(len(s) for s in stops) - 1), 0, -1):
        tail = text[-size:]
        if any(s.startswith(tail) for s in stops):
            return size
    return 0


class Sampler:
    """Generate text from a model and its tokenizer.

    Args:
        model: ``forward(ids (B, T) int64, state | None) -> (logits (B, T, V), state)`` with state
            a tuple of ``(L, B, H)`` tensors (batch on dim 1).
        tokenizer: the tokenizer the model was trained with.
        device: move the model there (``"cpu"``, ``"cuda"``, ``"auto"``...); None keeps it where
            it is.

    Example:
        >>> sampler = Sampler(model, tokenizer)                                 # doctest: +SKIP
        >>> sampler.generate("Romeo.", max_new_tokens=100, top_p=0.9, seed=1)[0].text  # doctest: +SKIP
    """

    def __init__(
        self, model: nn.Module, tokenizer: Tokenizer, *, device: str | torch.device | None = None
    ) -> None:
        if not isinstance(tokenizer, Tokenizer):
            raise TypeError(
                f"tokenizer must be a textgen Tokenizer, got {type(tokenizer).__name__}"
            )
        if device is not None:
            model.to(resolve_device(device))
        if next(iter(model.parameters()), None) is None:
            raise ValueError("model has no parameters; Sampler needs them to find its device")
        self.model = model
        self.tokenizer = tokenizer
        self.device = next(iter(model.parameters())).device

    # -- public API ---------------------------------------------------------------------------

    def generate(
        self, prompt: str = "", config: SampleConfig | None = None, **overrides: Any
    ) -> list[Generation]:
        """Generate ``config.num_samples`` continuations of ``prompt`` in one batch.

        Args:
            prompt: text to continue ("" starts from `start_token_id`).
            config: sampling settings (default `SampleConfig()`).
            **overrides: `SampleConfig` fields replacing those of ``config``.

        Returns:
            One `Generation` per sample (per beam with ``num_beams > 1``; see `beam_search`).

        Raises:
            UnknownTokenError: the prompt holds text the tokenizer cannot encode.
            TypeError / ValueError: an unknown or invalid setting.
        """
        config = self._config(config, overrides)
        if config.num_beams > 1:
            return self.beam_search(prompt, config)
        model_input, history = self._prompt(prompt)
        seeds = self._seeds(config)
        eos, stops = self.tokenizer.eos_id, config.stop
        stop_at: dict[int, int] = {}
        with self._inference():
            run = self._start(model_input, history, config, seeds)
            buffers = [b""] * config.num_samples
            stop_bytes = [s.encode("utf-8") for s in stops]
            check_every = 1 if self.device.type == "cpu" else 8  # `.all()` syncs an accelerator
            for step in range(config.max_new_tokens):
                next_ids = run.step()
                if stops:
                    self._scan_stops(next_ids.tolist(), step, buffers, stop_bytes, stop_at, run)
                if (
                    (eos is not None or stops)
                    and step % check_every == 0
                    and bool(run.finished.all())
                ):
                    break
            rows = run.tokens[:, run.prompt_length : run.length].tolist()
            logprobs = (
                run.logprobs[:, : run.length - run.prompt_length].tolist()
                if run.logprobs is not None
                else None
            )
        return [
            self._finish(row, stop_at.get(i), logprobs[i] if logprobs else None, stops)
            for i, row in enumerate(rows)
        ]

    def stream(
        self, prompt: str = "", config: SampleConfig | None = None, **overrides: Any
    ) -> Iterator[str]:
        """Yield the text of one sample piece by piece as it is produced.

        Bytes are decoded incrementally, so a character split across tokens is held back until it
        is complete, and with stop strings any tail that could begin one is held back too.
        ``"".join(stream(p, cfg))`` equals ``generate(p, cfg)[0].text`` for the same seed.

        Raises:
            ValueError: ``num_samples`` or ``num_beams`` is not 1 (stream one sequence).
            UnknownTokenError: the prompt holds text the tokenizer cannot encode (raised here,
                before iteration starts).
        """
        config = self._config(config, overrides)
        if config.num_samples != 1 or config.num_beams != 1:
            raise ValueError(
                f"stream produces one sequence; got num_samples={config.num_samples}, "
                f"num_beams={config.num_beams}"
            )
        model_input, history = self._prompt(prompt)
        with self._inference():
            run = self._start(model_input, history, config, self._seeds(config))
        return self._stream(run, config)

    def beam_search(
        self, prompt: str = "", config: SampleConfig | None = None, **overrides: Any
    ) -> list[Generation]:
        """The most probable continuations by beam search (width ``num_beams``).

        Beams are scored, as in Hugging Face, by ``sum of log-probs / length ** length_penalty``
        (length = new tokens, counting the end-of-sequence token). Penalties, bans and
        ``min_new_tokens`` apply; sampling settings and the seed are ignored. A beam ends at the
        end-of-sequence token or ``max_new_tokens``; stop strings cut the text afterwards.
        ``num_beams=1`` gives greedy decoding.

        Returns:
            The best ``num_samples`` hypotheses, best first, each with its ``score``.
        """
        config = self._config(config, overrides)
        model_input, history = self._prompt(prompt)
        processors = build_processors(
            dataclasses.replace(config, greedy=True), self.tokenizer, prompt_length=len(history)
        )
        with self._inference():
            hypotheses = _beam_search(
                self.model,
                model_input,
                history,
                processors,
                num_beams=config.num_beams,
                max_new_tokens=config.max_new_tokens,
                length_penalty=config.length_penalty,
                eos_id=self.tokenizer.eos_id,
            )
        hypotheses.sort(key=lambda h: h[0], reverse=True)
        results = []
        for score, ids, logprobs, reason in hypotheses[: config.num_samples]:
            result = self._finish(
                ids, None, logprobs if config.return_logprobs else None, config.stop
            )
            if reason == "eos" and result.finish_reason != "stop":
                result.finish_reason = "eos"
            result.score = score
            results.append(result)
        return results

    def score(self, text: str, *, prompt: str = "") -> list[float]:
        """Log-probability (natural log) of each token of ``text`` following ``prompt``.

        With an empty prompt the first token is predicted from `start_token_id`. ``text`` and
        ``prompt`` are encoded separately. The sum is the log-likelihood of ``text``.

        Returns:
            One float per token of ``tokenizer.encode(text)``.
        """
        targets = _encode(self.tokenizer, text, "text")
        if not targets:
            return []
        model_input, _ = self._prompt(prompt)
        inputs = model_input + targets[:-1]
        first = len(model_input) - 1  # position whose output predicts targets[0]
        result: list[float] = []
        state: State | None = None
        with self._inference():
            for start in range(0, len(inputs), 1024):
                chunk = torch.tensor([inputs[start : start + 1024]], device=self.device)
                logits, state = self.model(chunk, state)
                begin = max(first, start)
                if begin >= start + chunk.shape[1]:
                    continue
                wanted = torch.tensor(
                    targets[begin - first : start + chunk.shape[1] - first], device=self.device
                )
                log_probs = logits[0, begin - start :].float().log_softmax(dim=-1)
                result += log_probs.gather(1, wanted[:, None]).squeeze(1).tolist()
        return result

    # -- helpers ------------------------------------------------------------------------------

    @staticmethod
    def _config(config: SampleConfig | None, overrides: dict[str, Any]) -> SampleConfig:
        config = SampleConfig() if config is None else config
        if not isinstance(config, SampleConfig):
            raise TypeError(f"config must be a SampleConfig, got {type(config).__name__}")
        names = {f.name for f in dataclasses.fields(SampleConfig)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise TypeError(
                f"unknown sampling option(s) {', '.join(unknown)}; expected SampleConfig fields"
            )
        return dataclasses.replace(config, **overrides) if overrides else config

    def _prompt(self, prompt: str) -> tuple[list[int], list[int]]:
        """(model input, history for processors) for ``prompt``."""
        if not isinstance(prompt, str):
            raise TypeError(f"prompt must be a str, got {type(prompt).__name__}")
        ids = _encode(self.tokenizer, prompt, "prompt")
        return (ids, ids) if ids else ([start_token_id(self.tokenizer)], [])

    @staticmethod
    def _seeds(config: SampleConfig) -> list[int]:
        base = (
            config.seed if config.seed is not None else int.from_bytes(os.urandom(8), "little") >> 2
        )
        return [base + i for i in range(config.num_samples)]

    @contextmanager
    def _inference(self) -> Iterator[None]:
        """Eval mode (no dropout) and no autograd, restoring the model's training flag after."""
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode():
                yield
        finally:
            self.model.train(was_training)

    def _start(
        self, model_input: list[int], history: list[int], config: SampleConfig, seeds: list[int]
    ) -> _Run:
        return _Run(
            self.model,
            model_input,
            history,
            num_rows=config.num_samples,
            max_new_tokens=config.max_new_tokens,
            processors=build_processors(config, self.tokenizer, prompt_length=len(history)),
            greedy=config.greedy,
            seeds=seeds,
            eos_id=self.tokenizer.eos_id,
            want_logprobs=config.return_logprobs,
        )

    def _scan_stops(
        self,
        ids: list[int],
        step: int,
        buffers: list[bytes],
        stops: list[bytes],
        stop_at: dict[int, int],
        run: _Run,
    ) -> None:
        """Append each live row's new bytes and end the rows where a stop string appeared."""
        longest = max(len(s) for s in stops)
        for i, token in enumerate(ids):
            if i in stop_at or token == self.tokenizer.eos_id:
                continue
            old = len(buffers[i])
            buffers[i] += self.tokenizer.decode_bytes([token])
            window = buffers[i][max(0, old - longest + 1) :]
            if any(s in window for s in stops):
                stop_at[i] = step
                run.finished[i] = True
            buffers[i] = buffers[i][-longest:]  # only the tail can still start a stop string

    def _finish(
        self,
        ids: list[int],
        stop_step: int | None,
        logprobs: list[float] | None,
        stops: Sequence[str],
    ) -> Generation:
        reason: FinishReason = "length"
        if stop_step is not None:
            ids, reason = ids[: stop_step + 1], "stop"
        eos = self.tokenizer.eos_id
        if eos is not None and eos in ids:
            ids, reason = ids[: ids.index(eos)], "eos"
        text = self.tokenizer.decode_bytes(ids).decode("utf-8", errors="replace")
        cut = _find_stop(text, stops) if stops else None
        if cut is not None:
            text, reason = text[:cut], "stop"
        return Generation(text, ids, reason, logprobs[: len(ids)] if logprobs is not None else None)

    def _stream(self, run: _Run, config: SampleConfig) -> Iterator[str]:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        stops, pending = config.stop, ""
        for _ in range(config.max_new_tokens):
            # Inference mode and eval are entered per step, never held across a `yield`.
            with self._inference():
                token = int(run.step()[0])
            if token == self.tokenizer.eos_id:
                break
            pending += decoder.decode(self.tokenizer.decode_bytes([token]))
            if stops:
                cut = _find_stop(pending, stops)
                if cut is not None:
                    if cut:
                        yield pending[:cut]
                    return
            keep = _held_back(pending, stops) if stops else 0
            if len(pending) > keep:
                yield pending[: len(pending) - keep]
                pending = pending[len(pending) - keep :]
        pending += decoder.decode(b"", final=True)
        cut = _find_stop(pending, stops) if stops else None
        pending = pending if cut is None else pending[:cut]
        if pending:
            yield pending
