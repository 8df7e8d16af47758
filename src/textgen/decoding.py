"""The batched decoding loop: one model step, processors and one draw per new token.

In the sampling flow (prompt -> ``encode`` -> **model over the prompt once -> last-step logits
``(B, V)`` -> processors -> draw -> fed back**) this module owns the part in bold. A
`DecodingRun` runs the model over the prompt once, in chunks of `PROMPT_CHUNK` tokens with
the state carried (so a long prompt needs no more memory than a short one; an empty prompt
starts from `start_token_id`); each `DecodingRun.step` then feeds the previous token with the carried state
(one model step per token, whatever the length so far), applies the logits processors
(`textgen.processors`) and draws the next id of each row by inverse CDF from that row's own
``torch.Generator``. `DecodingRun.run` steps until every row has finished, handing the new ids
to a `textgen.stopping.BatchStops`, which turns them into text and says which rows a stop string
ended. `score_tokens` runs the same model over a given text instead (teacher forcing), for
`textgen.Sampler.score`.

Inputs are validated once, where the run starts: the prompt pass calls the model with its
checks, every later step calls it with ``check=False`` (see `unchecked_forward`).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence

import torch
from torch import nn

from textgen.kernels import choose_kernel, cpu_kernel
from textgen.model import State, select_state
from textgen.processors import ProcessorFunction, apply_processors, may_remove_every_token
from textgen.stopping import BatchStops
from textgen.tokenizers import Tokenizer

# Uniform numbers are drawn per row in blocks: one generator call per row every _BLOCK tokens keeps
# the per-token loop free of per-row Python work while each row still owns its random stream.
_BLOCK = 64
_INITIAL_TOKENS = 4096  # token buffer columns reserved at the start of a run

ModelStep = Callable[[torch.Tensor, State | None], tuple[torch.Tensor, State]]


def start_token_id(tokenizer: Tokenizer) -> int:
    """The token an empty prompt starts from: ``"\\n"`` if it is a single token, else ``eos_id``
    if any, else 0.

    A newline comes first because the model has seen it start lines and speeches; unless it was
    trained in documents mode (then `Sampler` starts from end-of-text), a model has never seen
    the end-of-text token, so its embedding may be untrained.
    """
    try:
        newline = tokenizer.encode("\n")
    except ValueError:
        newline = []
    if len(newline) == 1:
        return newline[0]
    return tokenizer.eos_id if tokenizer.eos_id is not None else 0


def unchecked_forward(model: nn.Module) -> ModelStep:
    """``model(ids, state)`` for a loop that built its inputs itself: with ``check=False`` when
    the model's ``forward`` takes it (textgen's model does), so no step re-validates ids and
    state; any other model with the ``forward(ids, state)`` contract is called as it is."""
    try:
        parameters = inspect.signature(model.forward).parameters.values()
    except (TypeError, ValueError):  # a forward without an introspectable signature
        return model
    if any(p.name == "check" or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return functools.partial(model, check=False)
    return model


def sample_from_logits(scores: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
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


def score_tokens(
    model: nn.Module, model_input: list[int], targets: list[int], *, chunk_size: int = 1024
) -> list[float]:
    """Log-probability of each of ``targets`` following ``model_input`` (teacher forcing).

    The model runs over ``model_input + targets[:-1]`` in chunks of ``chunk_size`` tokens with
    the state carried between them, so memory stays bounded for a long text.

    Returns:
        One float (natural log) per target.
    """
    if not targets:
        return []
    device = next(iter(model.parameters())).device
    inputs = model_input + targets[:-1]
    first = len(model_input) - 1  # position whose output predicts targets[0]
    result: list[float] = []
    state: State | None = None
    forward = unchecked_forward(model)
    kernel = choose_kernel(model, lambda x: forward(x, None), phase="prompt", batch_size=1)
    for start in range(0, len(inputs), chunk_size):
        chunk = torch.tensor([inputs[start : start + chunk_size]], device=device)
        with cpu_kernel(kernel):
            logits, state = model(chunk, state)
        begin = max(first, start)
        if begin >= start + chunk.shape[1]:
            continue
        wanted = torch.tensor(
            targets[begin - first : start + chunk.shape[1] - first], device=device
        )
        log_probs = logits[0, begin - start :].float().log_softmax(dim=-1)
        result += log_probs.gather(1, wanted[:, None]).squeeze(1).tolist()
    return result


#: Prompt tokens per model call: the prompt is read in chunks with the state carried, so a
#: prompt of any length needs memory for one chunk's (chunk, V) logits, never the whole prompt's.
PROMPT_CHUNK = 512


def run_prompt(
    model: nn.Module, model_input: list[int], kernel: bool | None = None
) -> tuple[torch.Tensor, State]:
    """Run ``model`` over a prompt in chunks of `PROMPT_CHUNK` tokens, carrying the state.

    Returns:
        The last position's logits ``(1, V)`` float, and the state after the whole prompt.
    """
    device = next(iter(model.parameters())).device
    state: State | None = None
    last: torch.Tensor | None = None
    with cpu_kernel(kernel):
        for start in range(0, len(model_input), PROMPT_CHUNK):
            ids = torch.tensor(
                [model_input[start : start + PROMPT_CHUNK]], dtype=torch.long, device=device
            )
            logits, state = model(ids, state)  # with the model's own checks
            last = logits[:, -1].float()
    assert last is not None and state is not None, "a prompt holds at least one token"
    return last, state


def nothing_left_error(new_token: int) -> ValueError:
    """The error for processors that left a row with every token removed."""
    return ValueError(
        f"the sampling settings removed every token at new token {new_token} (e.g. banned "
        "strings, no_repeat_ngram_size or a logits processor leave nothing to choose); relax them"
    )


class DecodingRun:
    """The state of one batched decoding: model state, last logits, tokens so far, finished rows.

    Args:
        model: ``forward(ids (B, T), state) -> (logits (B, T, V), state)``.
        model_input: the prompt's ids as fed to the model (a start token for an empty prompt).
        history: the prompt's ids as the processors see them (no start token).
        num_rows: rows B decoded together; they share the prompt pass.
        max_new_tokens: the most steps the run will take (sizes the token buffer).
        processors: applied in order to each step's ``(B, V)`` scores.
        greedy: take the argmax instead of drawing.
        seeds: one per row (ignored when greedy).
        eos_id: the end-of-sequence id (a row that drew it repeats it), or None.
        want_logprobs: record each drawn token's log-probability under the model.

    Attributes:
        tokens: ``(B, N)`` int64, N growing up to ``len(history) + max_new_tokens``; the first
            ``length`` columns are filled.
        finished: ``(B,)`` bool, rows that drew ``eos_id`` (callers may set more).
        logprobs: ``(B, N')`` float (growing like ``tokens``), or None.
    """

    def __init__(
        self,
        model: nn.Module,
        model_input: list[int],
        history: list[int],
        *,
        num_rows: int,
        max_new_tokens: int,
        processors: Sequence[ProcessorFunction],
        greedy: bool,
        seeds: list[int],
        eos_id: int | None,
        want_logprobs: bool,
    ) -> None:
        device = next(iter(model.parameters())).device
        self.model_step = unchecked_forward(model)
        # The faster CPU kernel for each phase, measured once per model shape (kernels.py).
        prompt_kernel = choose_kernel(
            model, lambda x: self.model_step(x, None), phase="prompt", batch_size=1
        )
        self.step_kernel = choose_kernel(
            model, lambda x: self.model_step(x, None), phase="step", batch_size=num_rows
        )
        last, state = run_prompt(model, model_input, prompt_kernel)  # in chunks, state carried
        rows = torch.zeros(num_rows, dtype=torch.long, device=device)
        self.state = select_state(state, rows)
        self.logits = last.expand(num_rows, -1)
        self.prompt_length = len(history)
        self.length = len(history)
        self.max_new_tokens = max_new_tokens
        # Grown as needed: max_new_tokens=10**9 must not reserve 8 GB per row up front.
        self.tokens = torch.empty(
            num_rows, len(history) + min(max_new_tokens, _INITIAL_TOKENS), dtype=torch.long,
            device=device,
        )  # fmt: skip
        self.tokens[:, : len(history)] = torch.tensor(history, dtype=torch.long, device=device)
        self.finished = torch.zeros(num_rows, dtype=torch.bool, device=device)
        self.logprobs = (
            torch.empty(num_rows, min(max_new_tokens, _INITIAL_TOKENS), device=device)
            if want_logprobs
            else None
        )
        self.processors = processors
        # Checking for an emptied row syncs with the device; only some processors can empty one.
        self.check_removed = may_remove_every_token(processors)
        self.greedy = greedy
        self.eos_id = eos_id
        self.generators = (
            [] if greedy else [torch.Generator(device=device).manual_seed(s) for s in seeds]
        )
        self._uniforms = torch.empty(0)
        self._pending: torch.Tensor | None = None

    def step(self) -> torch.Tensor:
        """Produce one token per row; returns ``(B,)`` int64 (finished rows repeat ``eos_id``).

        Raises:
            ValueError: the processors removed every token of some row.
        """
        if self._pending is not None:  # feed last step's token only when its successor is wanted
            with cpu_kernel(self.step_kernel):
                logits, self.state = self.model_step(self._pending[:, None], self.state)
            self.logits = logits[:, -1].float()
        scores = self.logits
        step = self.length - self.prompt_length
        if self.processors:
            scores = apply_processors(self.processors, self.tokens[:, : self.length], scores)
            if self.check_removed and bool(torch.isneginf(scores).all(dim=-1).any()):
                raise nothing_left_error(step + 1)
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
            next_ids = sample_from_logits(scores, self._uniforms[:, column : column + 1])
        if self.length == self.tokens.shape[1]:
            self._grow()
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

    def _grow(self) -> None:
        """Double the token (and log-prob) buffers, up to what ``max_new_tokens`` needs."""
        wanted = min(2 * self.tokens.shape[1], self.prompt_length + self.max_new_tokens)
        extra = wanted - self.tokens.shape[1]
        self.tokens = torch.cat(
            [self.tokens, self.tokens.new_empty(self.tokens.shape[0], extra)], 1
        )
        if self.logprobs is not None:
            more = self.logprobs.new_empty(self.logprobs.shape[0], extra)
            self.logprobs = torch.cat([self.logprobs, more], 1)

    def run(self, stops: BatchStops) -> None:
        """Step until ``max_new_tokens`` or until every row has finished: drawn the
        end-of-sequence token or, when ``stops`` has stop strings, completed one."""
        check_every = 1 if self.tokens.device.type == "cpu" else 8  # `.all()` syncs a GPU
        for step in range(self.max_new_tokens):
            next_ids = self.step()
            if stops.stops:  # no per-token Python work without stop strings
                for row in stops.feed(step, next_ids.tolist()):
                    self.finished[row] = True
            if (
                (self.eos_id is not None or stops.stops)
                and step % check_every == 0
                and bool(self.finished.all())
            ):
                break

    def new_tokens(self) -> list[list[int]]:
        """The ids generated so far, one list per row (prompt excluded)."""
        return self.tokens[:, self.prompt_length : self.length].tolist()

    def new_logprobs(self) -> list[list[float]] | None:
        """The recorded log-probabilities so far, one list per row, or None."""
        if self.logprobs is None:
            return None
        return self.logprobs[:, : self.length - self.prompt_length].tolist()


__all__ = [
    "PROMPT_CHUNK",
    "DecodingRun",
    "nothing_left_error",
    "run_prompt",
    "sample_from_logits",
    "score_tokens",
    "start_token_id",
    "unchecked_forward",
]
