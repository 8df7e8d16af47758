"""Logits processors: the small, composable steps between the model's logits and the next token.

In the sampling flow (prompt -> model -> last-step logits ``(B, V)`` -> processors -> draw) each
processor takes the tokens so far and the current scores and returns *new* scores, with removed
tokens at ``-inf``. None modifies its input. Semantics follow Hugging Face's
``transformers/generation/logits_process.py`` (which token top-p keeps at the threshold,
``min_tokens_to_keep``, min-p scaled by the top probability, repetition penalty dividing positive
and multiplying negative logits), so users of ``generate()`` get what they expect. Frequency and
presence penalties follow the OpenAI definition (``logit - frequency * count - presence * [count > 0]``).

Every processor is a vectorised torch operation over the batch; none does Python work per
vocabulary entry. `build_processors` composes them from a `SampleConfig`; a caller's own processors (any ``processor(input_ids, scores) -> scores`` callable, Hugging Face's
protocol) run after them, wrapped in `UserProcessors`.

Example:
    >>> import torch
    >>> from textgen.processors import TemperatureProcessor, TopKProcessor
    >>> ids = torch.zeros(1, 0, dtype=torch.long)
    >>> logits = torch.tensor([[2.0, 1.0, 0.0]])
    >>> TopKProcessor(2)(ids, TemperatureProcessor(0.5)(ids, logits))
    tensor([[4., 2., -inf]])
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import torch

from textgen.bans import StringBans
from textgen.tokenizers import Tokenizer
from textgen.validation import InvalidTypeError, InvalidValueError, check_float, check_int

if TYPE_CHECKING:  # only for annotations: the sampler imports this module
    from textgen.sampler import SampleConfig

_NEG_INF = float("-inf")

ProcessorFunction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""Hugging Face's protocol: ``processor(input_ids (B, T) int64, scores (B, V) float) -> scores``."""


def _remove_sorted(
    scores: torch.Tensor, sorted_indices: torch.Tensor, sorted_remove: torch.Tensor
) -> torch.Tensor:
    """Set to -inf the tokens flagged in ``sorted_remove`` (given in the order of ``sorted_indices``)."""
    remove = sorted_remove.scatter(1, sorted_indices, sorted_remove)
    return scores.masked_fill(remove, _NEG_INF)


class LogitsProcessor(ABC):
    """One step of logits processing: ``processor(input_ids, logits) -> new logits``.

    Subclass it (or write any callable with the same signature) to add your own rule, and pass it
    to `textgen.Sampler.generate` (or ``stream``, ``beam_search``) in ``logits_processors``.

    Attributes:
        may_remove_every_token: whether the processor can leave a row with every score at
            ``-inf``. The decoding loop checks for that (a device sync per token) only when some
            processor says True; a subclass that only rescales or keeps the best tokens sets False.

    Example:
        >>> class NoDigits(LogitsProcessor):
        ...     def __init__(self, digit_ids: list[int]) -> None:
        ...         self.digit_ids = digit_ids
        ...     def __call__(self, input_ids: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        ...         logits = logits.clone()
        ...         logits[:, self.digit_ids] = float("-inf")
        ...         return logits
        >>> NoDigits([1])(torch.zeros(1, 0, dtype=torch.long), torch.zeros(1, 3))
        tensor([[0., -inf, 0.]])
    """

    may_remove_every_token: bool = True

    @abstractmethod
    def __call__(self, input_ids: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """Return new scores.

        Args:
            input_ids: ``(B, T)`` int64, the tokens so far (prompt and generated; T may be 0).
            logits: ``(B, V)`` float scores for the next token.

        Returns:
            ``(B, V)`` new scores, removed tokens at ``-inf``; ``logits`` is left untouched.
        """

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"


class TemperatureProcessor(LogitsProcessor):
    """Divide the logits by ``temperature`` (> 0): below 1 sharpens, above 1 flattens."""

    may_remove_every_token = False

    def __init__(self, temperature: float) -> None:
        self.temperature = check_float("temperature", temperature)
        if self.temperature <= 0:
            raise InvalidValueError(
                ("temperature", "greedy"),
                f"temperature must be > 0, got {temperature!r}; for the most likely token at "
                "every step use greedy=True instead",
            )

    def __call__(self, input_ids: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        return logits / self.temperature


class TopKProcessor(LogitsProcessor):
    """Keep the ``top_k`` highest-scoring tokens (ties with the k-th score are kept too)."""

    may_remove_every_token = False

    def __init__(self, top_k: int, min_tokens_to_keep: int = 1) -> None:
        self.top_k = max(
            check_int("top_k", top_k, minimum=1),
            check_int("min_tokens_to_keep", min_tokens_to_keep, minimum=1),
        )

    def __call__(self, input_ids: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        k = min(self.top_k, logits.shape[-1])
        kth = torch.topk(logits, k, dim=-1).values[..., -1:]
        return logits.masked_fill(logits < kth, _NEG_INF)


class TopPProcessor(LogitsProcessor):
    """Nucleus sampling: keep the smallest set of most probable tokens whose mass reaches ``top_p``.

    As in Hugging Face, the token that crosses the threshold is kept (so the kept mass is
    >= ``top_p``), and at least ``min_tokens_to_keep`` tokens always survive.
    """

    may_remove_every_token = False

    def __init__(self, top_p: float, min_tokens_to_keep: int = 1) -> None:
        self.top_p = check_float("top_p", top_p, minimum=0, maximum=1, min_inclusive=False)
        self.min_tokens_to_keep = check_int("min_tokens_to_keep", min_tokens_to_keep, minimum=1)

    def __call__(self, input_ids: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        sorted_logits, sorted_indices = torch.sort(logits, descending=False, dim=-1)
        cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        # Ascending order: a token goes when the mass of it and everything below is <= 1 - top_p.
        remove = cumulative <= (1 - self.top_p)
        remove[..., -self.min_tokens_to_keep :] = False
        return _remove_sorted(logits, sorted_indices, remove)


class MinPProcessor(LogitsProcessor):
    """Keep tokens whose probability is at least ``min_p`` times the top token's probability."""

    may_remove_every_token = False

    def __init__(self, min_p: float, min_tokens_to_keep: int = 1) -> None:
        self.min_p = check_float("min_p", min_p, minimum=0, maximum=1)
        self.min_tokens_to_keep = check_int("min_tokens_to_keep", min_tokens_to_keep, minimum=1)

    def __call__(self, input_ids: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        probs = logits.softmax(dim=-1)
        remove = probs < self.min_p * probs.amax(dim=-1, keepdim=True)
        sorted_indices = torch.argsort(logits, descending=True, dim=-1)
        sorted_remove = remove.gather(1, sorted_indices)
        sorted_remove[..., : self.min_tokens_to_keep] = False
        return _remove_sorted(logits, sorted_indices, sorted_remove)


class TypicalProcessor(LogitsProcessor):
    """Locally typical sampling (Meister et al., 2022): keep the tokens whose surprisal is closest
    to the distribution's entropy, until their mass reaches ``typical_p``."""

    may_remove_every_token = False

    def __init__(self, typical_p: float, min_tokens_to_keep: int = 1) -> None:
        self.typical_p = check_float(
            "typical_p", typical_p, minimum=0, maximum=1, min_inclusive=False
        )
        self.min_tokens_to_keep = check_int("min_tokens_to_keep", min_tokens_to_keep, minimum=1)

    def __call__(self, input_ids: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        log_probs = logits.log_softmax(dim=-1)
        entropy = -(log_probs * log_probs.exp()).nansum(dim=-1, keepdim=True)
        distance = (-log_probs - entropy).abs()
        sorted_distance, sorted_indices = torch.sort(distance, descending=False, dim=-1)
        cumulative = logits.gather(1, sorted_indices).softmax(dim=-1).cumsum(dim=-1)
        last = (cumulative < self.typical_p).sum(dim=1, keepdim=True)
        last = last.clamp(max=logits.shape[-1] - 1)
        remove = sorted_distance > sorted_distance.gather(1, last)
        remove[..., : self.min_tokens_to_keep] = False
        return _remove_sorted(logits, sorted_indices, remove)


class RepetitionPenaltyProcessor(LogitsProcessor):
    """Penalise every token already in ``input_ids`` (CTRL, Keskar et al., 2019).

    A positive logit is divided by ``penalty``, a negative one multiplied, so ``penalty > 1``
    always makes a seen token less likely (and ``< 1`` more likely).
    """

    may_remove_every_token = False

    def __init__(self, penalty: float) -> None:
        self.penalty = check_float("repetition_penalty", penalty, minimum=0, min_inclusive=False)

    def __call__(self, input_ids: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        if input_ids.shape[1] == 0:
            return logits
        seen = logits.gather(1, input_ids)
        seen = torch.where(seen < 0, seen * self.penalty, seen / self.penalty)
        return logits.scatter(1, input_ids, seen)


def _token_counts(input_ids: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """``(B, V)`` float counts of each token in ``input_ids``."""
    counts = torch.zeros_like(logits)
    return counts.scatter_add_(1, input_ids, torch.ones_like(input_ids, dtype=logits.dtype))


class FrequencyPenaltyProcessor(LogitsProcessor):
    """Subtract ``penalty * count`` from each token's logit, count = occurrences in ``input_ids``."""

    may_remove_every_token = False

    def __init__(self, penalty: float) -> None:
        self.penalty = check_float("frequency_penalty", penalty)

    def __call__(self, input_ids: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        return logits - self.penalty * _token_counts(input_ids, logits)


class PresencePenaltyProcessor(LogitsProcessor):
    """Subtract ``penalty`` once from the logit of every token present in ``input_ids``."""

    may_remove_every_token = False

    def __init__(self, penalty: float) -> None:
        self.penalty = check_float("presence_penalty", penalty)

    def __call__(self, input_ids: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        return logits - self.penalty * (_token_counts(input_ids, logits) > 0).to(logits.dtype)


class NoRepeatNGramProcessor(LogitsProcessor):
    """Ban any token that would complete an n-gram (of ``ngram_size`` tokens) already in ``input_ids``.

    Vectorised over the history: each step compares the last ``n - 1`` tokens with every earlier
    window, so its cost grows with the sequence length (it is off by default).
    """

    def __init__(self, ngram_size: int) -> None:
        self.ngram_size = check_int("no_repeat_ngram_size", ngram_size, minimum=1)

    def __call__(self, input_ids: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        n = self.ngram_size
        if input_ids.shape[1] < n:
            return logits
        windows = input_ids.unfold(1, n, 1)  # (B, W, n): every n-gram so far
        prefix = input_ids[:, input_ids.shape[1] - (n - 1) :]  # (B, n - 1)
        match = (windows[:, :, : n - 1] == prefix[:, None, :]).all(dim=-1)  # (B, W)
        hits = torch.zeros_like(logits).scatter_add_(1, windows[:, :, -1], match.to(logits.dtype))
        return logits.masked_fill(hits > 0, _NEG_INF)


class BannedTokensProcessor(LogitsProcessor):
    """Never produce the given token sequences (Hugging Face's ``bad_words_ids``).

    A one-token sequence is always banned; for a longer one its last token is banned whenever the
    tokens so far end with the rest of it.
    """

    def __init__(self, sequences: Sequence[Sequence[int]]) -> None:
        if not _is_sequence(sequences) or not all(_is_sequence(seq) for seq in sequences):
            raise InvalidTypeError(
                "sequences",
                f"sequences must be a sequence of token-id sequences, got {sequences!r}",
            )
        single: list[int] = []
        multi: list[tuple[int, ...]] = []
        for seq in sequences:
            ids = tuple(check_int("banned token id", t, minimum=0) for t in seq)
            if not ids:
                raise InvalidValueError(
                    "sequences", f"banned sequences must not be empty, got {sequences!r}"
                )
            if len(ids) == 1:
                single.append(ids[0])
            else:
                multi.append(ids)
        self.single = single
        self.multi = multi

    def __call__(self, input_ids: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        banned = torch.zeros_like(logits, dtype=torch.bool)
        if self.single:
            banned[:, self.single] = True
        for seq in self.multi:
            k = len(seq) - 1
            if input_ids.shape[1] < k:
                continue
            prefix = torch.tensor(seq[:-1], device=input_ids.device)
            rows = (input_ids[:, input_ids.shape[1] - k :] == prefix).all(dim=1)
            banned[:, seq[-1]] |= rows
        return logits.masked_fill(banned, _NEG_INF)


class BannedStringsProcessor(LogitsProcessor):
    """Never let the decoded text contain any of ``strings`` (``bad_words``, ``--ban``).

    Checked on the text, not on one tokenization (`textgen.bans.StringBans`): a token is
    removed when the text so far followed by it would contain a banned string, so ``"the"`` is
    kept out of ``" the"``, ``"thee"`` and ``"t" + "he"`` alike, whatever the tokenizer.

    Raises:
        ValueError: a string is empty.
    """

    def __init__(self, strings: Sequence[str], tokenizer: Tokenizer) -> None:
        self.strings = tuple(strings)
        self.bans = StringBans(self.strings, tokenizer)

    def __call__(self, input_ids: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        return self.bans.mask_scores(input_ids, logits)


class MinNewTokensProcessor(LogitsProcessor):
    """Forbid the end-of-sequence token until ``min_new_tokens`` tokens follow the prompt."""

    def __init__(self, min_new_tokens: int, prompt_length: int, eos_id: int) -> None:
        self.min_new_tokens = check_int("min_new_tokens", min_new_tokens, minimum=0)
        self.prompt_length = check_int("prompt_length", prompt_length, minimum=0)
        self.eos_id = check_int("eos_id", eos_id, minimum=0)

    def __call__(self, input_ids: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        if input_ids.shape[1] - self.prompt_length >= self.min_new_tokens:
            return logits
        logits = logits.clone()
        logits[:, self.eos_id] = _NEG_INF
        return logits


class UserProcessors(LogitsProcessor):
    """A caller's own processors, run in order after the built-in ones.

    Any callable following Hugging Face's protocol ``processor(input_ids, scores) -> scores``
    works (a `LogitsProcessor` subclass, a plain class, a function). They run on copies of the
    scores and of the (contiguous) ids, so one that writes into them in place, as many Hugging
    Face processors do, cannot alter the run. The sampler checks after them that some token is
    left, unless every one sets ``may_remove_every_token = False``.

    Args:
        processors: the callables, validated here (once, not per token).

    Raises:
        TypeError: ``processors`` is not a sequence, or an entry is not callable (the message
            names its position).
    """

    def __init__(self, processors: Sequence[ProcessorFunction]) -> None:
        if not _is_sequence(processors):
            raise InvalidTypeError(
                "logits_processors",
                f"logits_processors must be a list of processors, got {type(processors).__name__}"
                f" {processors!r}; wrap a single processor in a list",
            )
        for i, processor in enumerate(processors):
            if not callable(processor):
                raise InvalidTypeError(
                    "logits_processors",
                    f"logits_processors[{i}] must be callable as processor(input_ids, scores) "
                    f"-> scores, got {type(processor).__name__} {processor!r}",
                )
        self.processors = tuple(processors)
        self.may_remove_every_token = may_remove_every_token(self.processors)

    def __call__(self, input_ids: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        input_ids, scores = input_ids.clone(), logits.clone()
        for i, processor in enumerate(self.processors):
            scores = processor(input_ids, scores)
            if not isinstance(scores, torch.Tensor) or scores.shape != logits.shape:
                is_tensor = isinstance(scores, torch.Tensor)
                got = tuple(scores.shape) if is_tensor else type(scores).__name__
                raise (InvalidValueError if is_tensor else InvalidTypeError)(
                    "logits_processors",
                    f"logits_processors[{i}] must return scores of shape {tuple(logits.shape)}, "
                    f"got {got}",
                )
        return scores


def build_processors(
    config: SampleConfig, tokenizer: Tokenizer | None = None, *, prompt_length: int = 0
) -> list[LogitsProcessor]:
    """The processors ``config`` asks for, in Hugging Face's order: penalties and bans first,
    then (when sampling) temperature, top-k, top-p, min-p, typical.

    Args:
        config: the sampling settings.
        tokenizer: needed to check ``bad_words`` on the text and to find the end-of-sequence id for
            ``min_new_tokens`` (without an ``eos_id`` that field has nothing to suppress).
        prompt_length: tokens of prompt in ``input_ids`` (for ``min_new_tokens``).

    Raises:
        ValueError: ``bad_words`` given without a tokenizer.
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
        processors.append(BannedStringsProcessor(config.bad_words, tokenizer))
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


def apply_processors(
    processors: Sequence[ProcessorFunction], input_ids: torch.Tensor, logits: torch.Tensor
) -> torch.Tensor:
    """Run ``processors`` in order: ``logits -> p1 -> p2 -> ...``; returns new ``(B, V)`` scores."""
    for processor in processors:
        logits = processor(input_ids, logits)
    return logits


def may_remove_every_token(processors: Sequence[ProcessorFunction]) -> bool:
    """Whether ``processors`` can leave a row with nothing to choose (see `LogitsProcessor`)."""
    return any(getattr(p, "may_remove_every_token", True) for p in processors)


def _is_sequence(value: object) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str | bytes)
