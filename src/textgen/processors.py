"""Logits processors: the small, composable steps between the model's logits and the next token.

In the sampling flow (prompt -> model -> last-step logits ``(B, V)`` -> processors -> draw) each
processor takes the tokens so far and the current scores and returns *new* scores, with removed
tokens at ``-inf``. None modifies its input. Semantics follow Hugging Face's
``transformers/generation/logits_process.py`` (which token top-p keeps at the threshold,
``min_tokens_to_keep``, min-p scaled by the top probability, repetition penalty dividing positive
and multiplying negative logits), so users of ``generate()`` get what they expect. Frequency and
presence penalties follow the OpenAI definition (``logit - frequency * count - presence * [count > 0]``).

Every processor is a vectorised torch operation over the batch; none does Python work per
vocabulary entry. `textgen.sampler.build_processors` composes them from a `SampleConfig`.

Example:
    >>> import torch
    >>> from textgen.processors import TemperatureProcessor, TopKProcessor
    >>> ids = torch.zeros(1, 0, dtype=torch.long)
    >>> logits = torch.tensor([[2.0, 1.0, 0.0]])
    >>> TopKProcessor(2)(ids, TemperatureProcessor(0.5)(ids, logits))
    tensor([[4., 2., -inf]])
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence

import torch

_NEG_INF = float("-inf")


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return value


def _check_float(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return float(value)


def _remove_sorted(
    scores: torch.Tensor, sorted_indices: torch.Tensor, sorted_remove: torch.Tensor
) -> torch.Tensor:
    """Set to -inf the tokens flagged in ``sorted_remove`` (given in the order of ``sorted_indices``)."""
    remove = sorted_remove.scatter(1, sorted_indices, sorted_remove)
    return scores.masked_fill(remove, _NEG_INF)


class LogitsProcessor(ABC):
    """One step of logits processing: ``processor(input_ids, logits) -> new logits``.

    Subclass it (or write any callable with the same signature) to add your own rule.
    """

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

    def __init__(self, temperature: float) -> None:
        self.temperature = _check_float("temperature", temperature)
        if self.temperature <= 0:
            raise ValueError(
                f"temperature must be > 0, got {temperature!r}; use greedy decoding instead of 0"
            )

    def __call__(self, input_ids: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        return logits / self.temperature


class TopKProcessor(LogitsProcessor):
    """Keep the ``top_k`` highest-scoring tokens (ties with the k-th score are kept too)."""

    def __init__(self, top_k: int, min_tokens_to_keep: int = 1) -> None:
        self.top_k = max(
            _check_int("top_k", top_k, 1), _check_int("min_tokens_to_keep", min_tokens_to_keep, 1)
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

    def __init__(self, top_p: float, min_tokens_to_keep: int = 1) -> None:
        self.top_p = _check_float("top_p", top_p)
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {top_p!r}")
        self.min_tokens_to_keep = _check_int("min_tokens_to_keep", min_tokens_to_keep, 1)

    def __call__(self, input_ids: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        sorted_logits, sorted_indices = torch.sort(logits, descending=False, dim=-1)
        cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        # Ascending order: a token goes when the mass of it and everything below is <= 1 - top_p.
        remove = cumulative <= (1 - self.top_p)
        remove[..., -self.min_tokens_to_keep :] = False
        return _remove_sorted(logits, sorted_indices, remove)


class MinPProcessor(LogitsProcessor):
    """Keep tokens whose probability is at least ``min_p`` times the top token's probability."""

    def __init__(self, min_p: float, min_tokens_to_keep: int = 1) -> None:
        self.min_p = _check_float("min_p", min_p)
        if not 0 <= self.min_p <= 1:
            raise ValueError(f"min_p must be in [0, 1], got {min_p!r}")
        self.min_tokens_to_keep = _check_int("min_tokens_to_keep", min_tokens_to_keep, 1)

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

    def __init__(self, typical_p: float, min_tokens_to_keep: int = 1) -> None:
        self.typical_p = _check_float("typical_p", typical_p)
        if not 0 < self.typical_p <= 1:
            raise ValueError(f"typical_p must be in (0, 1], got {typical_p!r}")
        self.min_tokens_to_keep = _check_int("min_tokens_to_keep", min_tokens_to_keep, 1)

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

    def __init__(self, penalty: float) -> None:
        self.penalty = _check_float("repetition_penalty", penalty)
        if self.penalty <= 0:
            raise ValueError(f"repetition_penalty must be > 0, got {penalty!r}")

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

    def __init__(self, penalty: float) -> None:
        self.penalty = _check_float("frequency_penalty", penalty)

    def __call__(self, input_ids: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        return logits - self.penalty * _token_counts(input_ids, logits)


class PresencePenaltyProcessor(LogitsProcessor):
    """Subtract ``penalty`` once from the logit of every token present in ``input_ids``."""

    def __init__(self, penalty: float) -> None:
        self.penalty = _check_float("presence_penalty", penalty)

    def __call__(self, input_ids: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        return logits - self.penalty * (_token_counts(input_ids, logits) > 0).to(logits.dtype)


class NoRepeatNGramProcessor(LogitsProcessor):
    """Ban any token that would complete an n-gram (of ``ngram_size`` tokens) already in ``input_ids``.

    Vectorised over the history: each step compares the last ``n - 1`` tokens with every earlier
    window, so its cost grows with the sequence length (it is off by default).
    """

    def __init__(self, ngram_size: int) -> None:
        self.ngram_size = _check_int("no_repeat_ngram_size", ngram_size, 1)

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
        if isinstance(sequences, (str, bytes)) or not isinstance(sequences, Sequence):
            raise TypeError(
                f"sequences must be a sequence of token-id sequences, got {sequences!r}"
            )
        single: list[int] = []
        multi: list[tuple[int, ...]] = []
        for seq in sequences:
            ids = tuple(_check_int("banned token id", t, 0) for t in seq)
            if not ids:
                raise ValueError(f"banned sequences must not be empty, got {sequences!r}")
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


class MinNewTokensProcessor(LogitsProcessor):
    """Forbid the end-of-sequence token until ``min_new_tokens`` tokens follow the prompt."""

    def __init__(self, min_new_tokens: int, prompt_length: int, eos_id: int) -> None:
        self.min_new_tokens = _check_int("min_new_tokens", min_new_tokens, 0)
        self.prompt_length = _check_int("prompt_length", prompt_length, 0)
        self.eos_id = _check_int("eos_id", eos_id, 0)

    def __call__(self, input_ids: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        if input_ids.shape[1] - self.prompt_length >= self.min_new_tokens:
            return logits
        logits = logits.clone()
        logits[:, self.eos_id] = _NEG_INF
        return logits


def apply_processors(
    processors: Sequence[LogitsProcessor], input_ids: torch.Tensor, logits: torch.Tensor
) -> torch.Tensor:
    """Run ``processors`` in order: ``logits -> p1 -> p2 -> ...``; returns new ``(B, V)`` scores."""
    for processor in processors:
        logits = processor(input_ids, logits)
    return logits
