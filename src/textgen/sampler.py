"""Sampling: turn a trained model and its tokenizer into text, the last step of the flow.

prompt -> ``encode`` -> the model over the whole prompt ONCE, to warm its recurrent state ->
last-step logits ``(B, V)`` -> logits processors (those `SampleConfig` asks for, then the
caller's ``logits_processors``) -> next token, drawn with a per-row ``torch.Generator`` -> fed
back with the carried state (one model step per token, whatever the length so far) -> its bytes
to a `textgen.stopping.StopMatcher`, which decodes them and watches for stop strings. This module
is the public face of that flow (`SampleConfig`, `Generation`, `Sampler`); the work is done by
`textgen.decoding` (the loop and the draw), `textgen.processors`, `textgen.stopping` and
`textgen.beam`.

Conventions:
    * Empty prompt: the model starts from one start token (`start_token_id`; the end-of-text
      token for a model trained on documents, so it begins a new one). It is model input only:
      not part of the text nor of the ``input_ids`` processors see.
    * Seeds: row ``i`` of a call with ``seed=s`` uses its own generator seeded with ``s + i``, so
      sample ``i`` of a batch equals a one-sample call with ``seed=s + i`` (same device), and the
      global RNG is never touched. Without a seed, a fresh seed comes from ``os.urandom``.
    * Output: ``Generation.text`` is the continuation only (no prompt), cut before the earliest
      stop string; the end-of-sequence token is never included.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from textgen.beam import beam_search as _beam_search
from textgen.checkpoint import Checkpoint, load_checkpoint
from textgen.decoding import DecodingRun, score_tokens, start_token_id
from textgen.options import option
from textgen.processors import (
    BannedStringsProcessor,
    BannedTokensProcessor,
    FrequencyPenaltyProcessor,
    LogitsProcessor,
    MinNewTokensProcessor,
    MinPProcessor,
    NoRepeatNGramProcessor,
    PresencePenaltyProcessor,
    ProcessorFunction,
    RepetitionPenaltyProcessor,
    TemperatureProcessor,
    TopKProcessor,
    TopPProcessor,
    TypicalProcessor,
    UserProcessors,
    apply_processors,
    build_processors,
)
from textgen.runtime import resolve_device
from textgen.stopping import BatchStops, FinishReason, StopMatcher, match_pieces
from textgen.tokenizers import Tokenizer, UnknownTokenError
from textgen.validation import (
    InvalidValueError,
    check_bool,
    check_float,
    check_int,
    check_optional_int,
    check_strings,
)

__all__ = [
    "BannedStringsProcessor",
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
    "with_overrides",
]


@dataclass(frozen=True)
class SampleConfig:
    """How to sample. Defaults: plain sampling at temperature 1, every filter off.

    ``None`` (or the neutral value) turns a filter or penalty off. ``greedy=True`` and beam search
    (``num_beams > 1``) ignore the sampling-only fields (temperature, top_k, top_p, min_p,
    typical_p, seed), as in Hugging Face ``generate()``. Each field's meaning is its ``help``
    (`textgen.options.describe`), which is also its ``textgen generate`` flag's help.
    """

    max_new_tokens: int = option(200, "most tokens to generate after the prompt (>= 0)")
    min_new_tokens: int = option(0, "forbid the end-of-text token before this many new tokens")
    temperature: float = option(1.0, "divide the logits by this (> 0): < 1 safer, > 1 more varied")
    top_k: int | None = option(None, "sample among the k most likely tokens (>= 1)")
    top_p: float | None = option(None, "nucleus: keep top tokens up to this probability, in (0, 1]")
    min_p: float | None = option(None, "keep tokens >= min_p x the top probability, in [0, 1]")
    typical_p: float | None = option(None, "locally typical sampling: mass kept, in (0, 1]")
    repetition_penalty: float = option(
        1.0, "> 1 discourages tokens already in the text, < 1 encourages them (1: off)"
    )
    frequency_penalty: float = option(0.0, "subtracted from a logit per earlier occurrence")
    presence_penalty: float = option(0.0, "subtracted once from the logit of a seen token")
    no_repeat_ngram_size: int = option(0, "never repeat an n-gram of this many tokens (0: off)")
    bad_words: tuple[str, ...] = option(
        (), "strings never to produce (their token sequences are banned)", flag="--ban"
    )
    stop: tuple[str, ...] = option((), "stop strings: the text ends before the earliest one")
    greedy: bool = option(False, "always take the most likely token instead of sampling")
    num_samples: int = option(1, "sequences to generate (beam search: best beams returned)")
    num_beams: int = option(1, "beam width; above 1 runs beam search instead of sampling")
    length_penalty: float = option(
        1.0, "beam score = summed log-probs / length ** length_penalty (> 0 favours long beams)"
    )
    seed: int | None = option(None, "random seed (sample i uses seed + i); None: a fresh one")
    return_logprobs: bool = option(
        False, "also return each token's log-probability under the model", flag=""
    )

    def __post_init__(self) -> None:
        check_int("max_new_tokens", self.max_new_tokens, minimum=0)
        check_int("min_new_tokens", self.min_new_tokens, minimum=0)
        if self.min_new_tokens > self.max_new_tokens:
            raise InvalidValueError(
                "min_new_tokens",
                f"min_new_tokens ({self.min_new_tokens}) must be <= max_new_tokens "
                f"({self.max_new_tokens})",
            )
        # The processors own the ranges of their settings: building one validates its field.
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
        check_int("no_repeat_ngram_size", self.no_repeat_ngram_size, minimum=0)
        object.__setattr__(self, "bad_words", check_strings("bad_words", self.bad_words))
        object.__setattr__(self, "stop", check_strings("stop", self.stop))
        check_bool("greedy", self.greedy)
        check_bool("return_logprobs", self.return_logprobs)
        check_int("num_samples", self.num_samples, minimum=1)
        check_int("num_beams", self.num_beams, minimum=1)
        if self.num_beams > 1 and self.num_samples > self.num_beams:
            raise InvalidValueError(
                "num_samples",
                f"num_samples ({self.num_samples}) must be <= num_beams ({self.num_beams}) "
                "for beam search",
            )
        check_float("length_penalty", self.length_penalty)
        check_optional_int("seed", self.seed, minimum=0)


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


#: Hugging Face ``generate()`` names accepted as keyword overrides: name -> (SampleConfig field,
#: value converter).
HF_ALIASES = {
    "do_sample": ("greedy", lambda value: not value),
    "num_return_sequences": ("num_samples", lambda value: value),
}


def with_overrides(config: SampleConfig, overrides: dict[str, Any]) -> SampleConfig:
    """``config`` with ``overrides`` (`SampleConfig` field names, or Hugging Face's
    ``do_sample`` and ``num_return_sequences``) replacing its values; what `Sampler.generate`
    does with its keyword arguments, and ``textgen generate`` with its flags.

    Raises:
        TypeError: an unknown name.
        InvalidValueError: an alias and its field given with different meanings, or
            ``do_sample=True`` with beam search (Hugging Face's beam sampling, not implemented).
    """
    beam_sampling = overrides.get("do_sample") is True
    overrides = _hugging_face_aliases(overrides)
    names = {f.name for f in dataclasses.fields(SampleConfig)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise TypeError(
            f"unknown sampling option(s) {', '.join(unknown)}; expected SampleConfig fields"
        )
    config = dataclasses.replace(config, **overrides) if overrides else config
    if beam_sampling and config.num_beams > 1:
        raise InvalidValueError(
            "do_sample",
            "do_sample=True with num_beams > 1 (Hugging Face's beam sampling) is not "
            "supported; beam search here is deterministic: use do_sample=False",
        )
    return config


def _hugging_face_aliases(overrides: dict[str, Any]) -> dict[str, Any]:
    """Translate Hugging Face's ``do_sample`` (``greedy = not do_sample``) and
    ``num_return_sequences`` (``num_samples``) into `SampleConfig` fields.

    Raises:
        InvalidValueError: an alias and its field are both given with different meanings.
    """
    overrides = dict(overrides)
    for alias, (name, convert) in HF_ALIASES.items():
        if alias not in overrides:
            continue
        value = overrides.pop(alias)
        if alias == "do_sample":
            value = check_bool("do_sample", value)
        converted = convert(value)
        if name in overrides and overrides[name] != converted:
            raise InvalidValueError(
                (alias, name),
                f"{alias}={value!r} contradicts {name}={overrides[name]!r}; give one of them",
            )
        overrides[name] = converted
    return overrides


def _encode(tokenizer: Tokenizer, text: str, what: str) -> list[int]:
    try:
        return tokenizer.encode(text)
    except UnknownTokenError as error:
        shown = repr(text) if len(text) <= 60 else f"of {len(text):,} characters"
        raise UnknownTokenError(f"{what} {shown} cannot be encoded: {error}") from error


class _VocabLimit(LogitsProcessor):
    """Remove the ids at and past ``size``: outputs of the model its tokenizer cannot decode."""

    may_remove_every_token = False

    def __init__(self, size: int) -> None:
        self.size = size

    def __call__(self, input_ids: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        return torch.cat(
            [logits[:, : self.size], torch.full_like(logits[:, self.size :], float("-inf"))], 1
        )


class Sampler:
    """Generate text from a model and its tokenizer.

    ``generate``, ``stream`` and ``beam_search`` also take the caller's ``logits_processors``:
    callables following Hugging Face's ``processor(input_ids (B, T) int64, scores (B, V) float)
    -> scores``, applied in order after the built-in ones (`textgen.processors.UserProcessors`).
    ``input_ids`` holds the prompt and the tokens generated so far (T may be 0).

    Args:
        model: ``forward(ids (B, T) int64, state | None) -> (logits (B, T, V), state)`` with state
            a tuple of ``(L, B, H)`` tensors (batch on dim 1). When ``forward`` also takes
            ``check`` (textgen's model does), the steps after the prompt pass ``check=False``.
        tokenizer: the tokenizer the model was trained with.
        device: move the model there (``"cpu"``, ``"cuda"``, ``"auto"``...); None keeps it where
            it is.
        documents: the model was trained in documents mode (end-of-text between items): an empty
            prompt starts from end-of-text, so it begins a new item. `from_checkpoint` sets it.

    Example:
        >>> sampler = Sampler(model, tokenizer)                                 # doctest: +SKIP
        >>> sampler.generate("Romeo.", max_new_tokens=100, top_p=0.9, seed=1)[0].text  # doctest: +SKIP
    """

    def __init__(
        self,
        model: nn.Module,
        tokenizer: Tokenizer,
        *,
        device: str | torch.device | None = None,
        documents: bool = False,
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
        model_vocab = getattr(getattr(model, "config", None), "vocab_size", None)
        if isinstance(model_vocab, int) and model_vocab < tokenizer.vocab_size:
            raise InvalidValueError(
                "vocab_size",
                f"the model's vocab_size {model_vocab} is smaller than its tokenizer's "
                f"{tokenizer.vocab_size}: they do not belong together (give the tokenizer the "
                "model was trained with)",
            )
        # A model may have more outputs than its tokenizer has tokens (the Trainer allows it);
        # ids the tokenizer cannot decode are then never drawn.
        self._vocab_limit = (
            _VocabLimit(tokenizer.vocab_size)
            if isinstance(model_vocab, int) and model_vocab > tokenizer.vocab_size
            else None
        )
        eos = tokenizer.eos_id
        #: the token an empty prompt starts from
        self.start_id = eos if documents and eos is not None else start_token_id(tokenizer)

    @classmethod
    def from_checkpoint(
        cls, source: str | Path | Checkpoint, device: str | torch.device = "auto"
    ) -> Sampler:
        """A sampler for a saved model, in one call.

        Args:
            source: a checkpoint file, a run folder (its ``best.pt``), the name of a bundled
                pretrained model such as ``"shakespeare"``, or a loaded `Checkpoint`.
            device: where to run (``"auto"``: CUDA when available, else CPU).

        Raises:
            CheckpointError: nothing readable at ``source``.
            ValueError: the device is not available.

        Example:
            >>> sampler = Sampler.from_checkpoint("shakespeare")                  # doctest: +SKIP
            >>> print(sampler.generate("ROMEO:", max_new_tokens=60, seed=0)[0].text)  # doctest: +SKIP
        """
        checkpoint = source if isinstance(source, Checkpoint) else load_checkpoint(source)
        documents = checkpoint.metadata.get("documents", "none") not in (None, "none")
        model = checkpoint.build_model(resolve_device(device))
        return cls(model, checkpoint.tokenizer, documents=documents)

    # -- public API ---------------------------------------------------------------------------

    def generate(
        self,
        prompt: str = "",
        config: SampleConfig | None = None,
        *,
        logits_processors: Sequence[ProcessorFunction] = (),
        **overrides: Any,
    ) -> list[Generation]:
        """Generate ``config.num_samples`` continuations of ``prompt`` in one batch.

        Args:
            prompt: text to continue ("" starts from `start_token_id`).
            config: sampling settings (default `SampleConfig()`).
            logits_processors: the caller's processors, applied after the built-in ones.
            **overrides: `SampleConfig` fields replacing those of ``config``. Hugging Face's
                names are accepted too: ``do_sample`` (``greedy = not do_sample``) and
                ``num_return_sequences`` (``num_samples``); giving an alias and its field with
                different meanings is an error.

        Returns:
            One `Generation` per sample (per beam with ``num_beams > 1``; see `beam_search`).

        Raises:
            UnknownTokenError: the prompt holds text the tokenizer cannot encode.
            TypeError / ValueError: an unknown or invalid setting or processor.
        """
        config = self._config(config, overrides)
        if config.num_beams > 1:
            return self.beam_search(prompt, config, logits_processors=logits_processors)
        stops = BatchStops(self.tokenizer, config.stop, config.num_samples)
        with self._inference():
            run = self._start(prompt, config, logits_processors)
            run.run(stops)
            rows, logprobs = run.new_tokens(), run.new_logprobs()
        results = []
        for i, row_ids in enumerate(rows):
            text, ids, reason = stops.finish(i, row_ids)
            row_logprobs = logprobs[i][: len(ids)] if logprobs is not None else None
            results.append(Generation(text, ids, reason, row_logprobs))
        return results

    def stream(
        self,
        prompt: str = "",
        config: SampleConfig | None = None,
        *,
        logits_processors: Sequence[ProcessorFunction] = (),
        **overrides: Any,
    ) -> Iterator[str]:
        """Yield the text of one sample piece by piece as it is produced.

        Each token's bytes go to a `textgen.stopping.StopMatcher`, so a character split across
        tokens is held back until it is complete, and with stop strings any tail that could
        begin one is held back too. ``"".join(stream(p, cfg))`` equals
        ``generate(p, cfg)[0].text`` for the same seed (and the same ``logits_processors``).

        Raises:
            ValueError: ``num_samples`` or ``num_beams`` is not 1 (stream one sequence).
            UnknownTokenError: the prompt holds text the tokenizer cannot encode (raised here,
                before iteration starts, as are invalid settings and processors).
        """
        config = self._config(config, overrides)
        if config.num_samples != 1 or config.num_beams != 1:
            raise ValueError(
                f"stream produces one sequence; got num_samples={config.num_samples}, "
                f"num_beams={config.num_beams}"
            )
        with self._inference():
            run = self._start(prompt, config, logits_processors)
        return self._stream(run, config)

    def beam_search(
        self,
        prompt: str = "",
        config: SampleConfig | None = None,
        *,
        logits_processors: Sequence[ProcessorFunction] = (),
        **overrides: Any,
    ) -> list[Generation]:
        """The most probable continuations by beam search (width ``num_beams``).

        Beams are scored, as in Hugging Face, by ``sum of log-probs / length ** length_penalty``
        (length = new tokens, counting the end-of-sequence token). Penalties, bans,
        ``min_new_tokens`` and ``logits_processors`` apply, before the log-softmax; sampling
        settings and the seed are ignored. A beam ends at the end-of-sequence token or
        ``max_new_tokens``; stop strings then cut each hypothesis (its text, and its ids after
        the token that completed the stop string; the score stays the searched beam's).
        ``num_beams=1`` gives greedy decoding.

        Returns:
            The best ``num_samples`` hypotheses, best first, each with its ``score``.
        """
        config = self._config(config, overrides)
        model_input, history, processors = self._prepare(
            prompt, dataclasses.replace(config, greedy=True), logits_processors
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
            pieces = [self.tokenizer.decode_bytes([token]) for token in ids]
            text, stop_index = match_pieces(pieces, config.stop)
            finish: FinishReason = reason if stop_index is None else "stop"
            ids = ids if stop_index is None else ids[: stop_index + 1]
            row_logprobs = logprobs[: len(ids)] if config.return_logprobs else None
            results.append(Generation(text, ids, finish, row_logprobs, score))
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
        with self._inference():
            return score_tokens(self.model, model_input, targets)

    # -- helpers ------------------------------------------------------------------------------

    @staticmethod
    def _config(config: SampleConfig | None, overrides: dict[str, Any]) -> SampleConfig:
        config = SampleConfig() if config is None else config
        if not isinstance(config, SampleConfig):
            raise TypeError(f"config must be a SampleConfig, got {type(config).__name__}")
        return with_overrides(config, overrides)

    def _prompt(self, prompt: str) -> tuple[list[int], list[int]]:
        """(model input, history for processors) for ``prompt``."""
        if not isinstance(prompt, str):
            raise TypeError(f"prompt must be a str, got {type(prompt).__name__}")
        ids = _encode(self.tokenizer, prompt, "prompt")
        return (ids, ids) if ids else ([self.start_id], [])

    def _prepare(
        self, prompt: str, config: SampleConfig, logits_processors: Sequence[ProcessorFunction]
    ) -> tuple[list[int], list[int], list[ProcessorFunction]]:
        """The model input and processor history of ``prompt``, and the processors (those
        ``config`` asks for, then the caller's, validated here: before any model work)."""
        user = UserProcessors(logits_processors)
        model_input, history = self._prompt(prompt)
        processors: list[ProcessorFunction] = (
            [] if self._vocab_limit is None else [self._vocab_limit]
        )
        processors += build_processors(config, self.tokenizer, prompt_length=len(history))
        if user.processors:
            processors.append(user)
        return model_input, history, processors

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
        self, prompt: str, config: SampleConfig, logits_processors: Sequence[ProcessorFunction]
    ) -> DecodingRun:
        """Check the call's prompt and processors, then run the model over the prompt."""
        model_input, history, processors = self._prepare(prompt, config, logits_processors)
        seed = config.seed
        if seed is None:
            seed = int.from_bytes(os.urandom(8), "little") >> 2
        return DecodingRun(
            self.model,
            model_input,
            history,
            num_rows=config.num_samples,
            max_new_tokens=config.max_new_tokens,
            processors=processors,
            greedy=config.greedy,
            seeds=[seed + i for i in range(config.num_samples)],
            eos_id=self.tokenizer.eos_id,
            want_logprobs=config.return_logprobs,
        )

    def _stream(self, run: DecodingRun, config: SampleConfig) -> Iterator[str]:
        matcher = StopMatcher(config.stop)
        for _ in range(config.max_new_tokens):
            # Inference mode and eval are entered per step, never held across a `yield`.
            with self._inference():
                token = int(run.step()[0])
            if token == self.tokenizer.eos_id:
                break
            piece = matcher.feed(self.tokenizer.decode_bytes([token]))
            if piece:
                yield piece
            if matcher.stopped:
                return
        rest = matcher.close()
        if rest:
            yield rest
