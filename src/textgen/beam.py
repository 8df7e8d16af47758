"""Beam search over a recurrent state: the most probable continuations, not a sample.

In the sampling flow (prompt -> model over the prompt once -> last-step logits -> processors ->
**choose** -> fed back) beam search replaces the draw: each step feeds every beam's last token,
with its own carried state (reordered with `select_state` as beams are kept or dropped), in one
batched model call of one token per beam (``check=False``: the prefix is never run again and the
inputs were built here). The processors (built-in, then the caller's) act on the logits before
the log-softmax. Scores follow Hugging Face: summed log-probabilities divided by
``length ** length_penalty``. Stop strings cut the finished hypotheses afterwards
(`textgen.stopping`, in `textgen.Sampler.beam_search`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

from textgen.decoding import nothing_left_error, run_prompt, unchecked_forward
from textgen.kernels import choose_kernel, cpu_kernel
from textgen.model import select_state
from textgen.processors import ProcessorFunction, apply_processors, may_remove_every_token

Hypothesis = tuple[float, list[int], list[float], Literal["eos", "length"]]


def beam_search(
    model: nn.Module,
    model_input: list[int],
    history: list[int],
    processors: Sequence[ProcessorFunction],
    *,
    num_beams: int,
    max_new_tokens: int,
    length_penalty: float,
    eos_id: int | None,
) -> list[Hypothesis]:
    """Run beam search from a prompt; returns finished hypotheses, unsorted.

    Args:
        model: ``forward(ids (B, T), state) -> (logits (B, T, V), state)``.
        model_input: the prompt's ids as fed to the model (a start token for an empty prompt).
        history: the prompt's ids as the processors see them.
        processors: logits processors (built-in, then the caller's) applied before the
            log-softmax, so width 1 is greedy.
        num_beams: beam width.
        max_new_tokens: longest continuation.
        length_penalty: score = summed log-probs / length ** length_penalty.
        eos_id: the end-of-sequence id, or None.

    Returns:
        ``(score, new ids, model log-probs per id, "eos" | "length")`` per hypothesis.

    Raises:
        ValueError: the processors leave no token to choose for any beam.
    """
    width, eos, penalty = num_beams, eos_id, length_penalty
    device = next(iter(model.parameters())).device
    model_step = unchecked_forward(model)
    # The faster CPU kernel for each phase, measured once per model shape (kernels.py).
    kernels = {
        phase: choose_kernel(model, lambda x: model_step(x, None), phase=phase, batch_size=rows)
        for phase, rows in (("prompt", 1), ("step", num_beams))
    }
    logits, state = run_prompt(model, model_input, kernels["prompt"])  # in chunks
    check_removed = may_remove_every_token(processors)
    tokens = torch.tensor([history], dtype=torch.long, device=device)  # (beams, T)
    token_logprobs = torch.zeros(1, 0, device=device)  # model log-probs per beam token
    beam_scores = torch.zeros(1, device=device)  # summed processed log-probs
    done: list[Hypothesis] = []
    prompt_length = len(history)
    for step in range(max_new_tokens):
        if step > 0:
            with cpu_kernel(kernels["step"]):
                logits, state = model_step(tokens[:, -1:], state)
            logits = logits[:, -1].float()
        # Processors act on logits, then log-softmax, so a width of 1 is exactly greedy.
        scored = apply_processors(processors, tokens, logits)
        processed = scored.log_softmax(dim=-1)
        if check_removed:
            removed = torch.isneginf(scored).all(dim=-1)  # beams left with nothing to choose
            if bool(removed.all()):
                raise nothing_left_error(step + 1)
            processed = processed.masked_fill(removed[:, None], float("-inf"))
        candidates = (beam_scores[:, None] + processed).view(-1)
        top_scores, top_index = candidates.topk(min(2 * width, candidates.numel()))
        vocab_size = logits.shape[-1]
        keep: list[tuple[float, int, int]] = []
        for rank, (score, index) in enumerate(
            zip(top_scores.tolist(), top_index.tolist(), strict=True)
        ):
            beam, token = divmod(index, vocab_size)
            if score == float("-inf"):
                break
            if token == eos:
                if rank < width:
                    raw = [
                        *token_logprobs[beam].tolist(),
                        float(logits[beam].log_softmax(-1)[token]),
                    ]
                    ids_so_far = tokens[beam, prompt_length:].tolist()
                    done.append((score / (step + 1) ** penalty, ids_so_far, raw, "eos"))
                continue
            keep.append((score, beam, token))
            if len(keep) == width:
                break
        if not keep:
            return done
        beams = torch.tensor([b for _, b, _ in keep], device=device)
        new_tokens = torch.tensor([t for _, _, t in keep], device=device)
        raw_new = logits.log_softmax(dim=-1)[beams, new_tokens]
        tokens = torch.cat([tokens[beams], new_tokens[:, None]], dim=1)
        token_logprobs = torch.cat([token_logprobs[beams], raw_new[:, None]], dim=1)
        beam_scores = torch.tensor([s for s, _, _ in keep], device=device)
        state = select_state(state, beams)
        if len(done) >= width:
            worst = sorted(h[0] for h in done)[-width]
            if worst >= float(beam_scores.max()) / (step + 1) ** penalty:
                return done
    length = max(1, max_new_tokens)
    for i in range(tokens.shape[0]):
        done.append(
            (
                float(beam_scores[i]) / length**penalty,
                tokens[i, prompt_length:].tolist(),
                token_logprobs[i].tolist(),
                "length",
            )
        )
    return done
