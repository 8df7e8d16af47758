"""Why did the model predict this token? Surprisal, top alternatives and gradient saliency.

Sits beside `evaluation` on top of the model: where `evaluate_split` sums the loss over a text,
`explain` keeps it per token and adds, for every predicted token t, the model's top
alternatives and a saliency vector over the context, the L2 norm of
``d log p(token_t | tokens_<t) / d e_j`` for each earlier position j, where ``e_j`` is the
embedding lookup's output at j (the model in eval mode, zero initial state). ``textgen explain``
prints it as text or JSON, or draws it as an HTML page (`textgen.explain_html`).

Cost. The surprisals are one forward pass over the text. Saliency needs one backward pass per
predicted token; each covers only the last ``window`` positions (K): the state entering the
window comes from a gradient-free pass over the text, so the entries inside the window are exact
and the cost is linear in the text, about ``3 * n * K`` recurrent steps for n tokens (a forward
and a backward over K steps per token), run ``batch_size`` tokens at a time as one batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from textgen.loss import compute_metrics
from textgen.model import LSTMLanguageModel, State
from textgen.tokenizers import Tokenizer
from textgen.validation import InvalidTypeError, InvalidValueError, check_int

_CHUNK = 1024  # tokens per gradient-free forward call: bounded memory for long texts


@dataclass(frozen=True)
class TokenExplanation:
    """What the model made of one token of the text.

    Attributes:
        index: position t of the token in the text's token ids.
        token: the token's text (``tokenizer.decode([id])``).
        surprisal: ``-log p(token_t | tokens_<t)`` in nats; None for the first token, which
            nothing predicts.
        top: the model's most likely tokens at this position, ``(token, probability)``, most
            likely first (empty for the first token).
        saliency: the gradient norm of this token's log-probability with respect to each
            earlier position's embedding: ``min(t, window)`` entries, for positions
            ``t - len(saliency) .. t - 1`` (all ``t`` earlier positions when ``t <= window``).
    """

    index: int
    token: str
    surprisal: float | None
    top: list[tuple[str, float]]
    saliency: list[float]

    def to_dict(self) -> dict[str, Any]:
        """``{"index", "token", "surprisal", "top", "saliency"}`` (``top`` as objects)."""
        return {
            "index": self.index,
            "token": self.token,
            "surprisal": self.surprisal,
            "top": [{"token": token, "probability": p} for token, p in self.top],
            "saliency": self.saliency,
        }


@dataclass(frozen=True)
class Explanation:
    """Every token of a text explained, and the text's totals.

    Attributes:
        tokens: one `TokenExplanation` per token, in order.
        mean_surprisal: mean surprisal of the predicted tokens (all but the first), in nats:
            what `evaluate_split` reports as ``loss`` for the same text in one stream. None for
            a one-token text.
        bits_per_char: the same total in bits over the characters of the predicted tokens
            (counted as `evaluate_split` counts them); None for a one-token text.
        window: the saliency window K.
    """

    tokens: list[TokenExplanation]
    mean_surprisal: float | None
    bits_per_char: float | None
    window: int

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: ``{"tokens": [...], "mean_surprisal", "bits_per_char"}``."""
        return {
            "tokens": [token.to_dict() for token in self.tokens],
            "mean_surprisal": self.mean_surprisal,
            "bits_per_char": self.bits_per_char,
        }


def explain(
    model: LSTMLanguageModel,
    tokenizer: Tokenizer,
    text: str,
    *,
    window: int = 256,
    top_k: int = 5,
    batch_size: int = 32,
) -> Explanation:
    """Surprisal, top alternatives and gradient saliency for every token of ``text``.

    Args:
        model: the model; put in eval mode for the call (no dropout), its mode restored after.
        tokenizer: the model's tokenizer.
        text: the text to explain (at least one token).
        window: K, the most context positions each token's saliency covers.
        top_k: how many alternatives to list per token.
        batch_size: predicted tokens whose backward passes run together as one batch (memory
            grows with ``batch_size * window``).

    Returns:
        An `Explanation`.

    Raises:
        TypeError: ``text`` is not a string, or a size is not an int.
        ValueError: ``text`` encodes to no tokens, a size < 1, or a symbol is not in the
            vocabulary.

    Example:
        >>> result = explain(model, tokenizer, "To be, or not to be")  # doctest: +SKIP
        >>> result.tokens[1].surprisal, len(result.tokens[5].saliency)  # doctest: +SKIP
        (2.31, 5)
    """
    if not isinstance(text, str):
        raise InvalidTypeError("text", f"text must be a str, got {type(text).__name__}")
    window = check_int("window", window, minimum=1)
    top_k = check_int("top_k", top_k, minimum=1)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    ids = tokenizer.encode(text)
    if not ids:
        raise InvalidValueError("text", "text encodes to no tokens; give some text to explain")
    device = next(model.parameters()).device
    ids_tensor = torch.tensor(ids, dtype=torch.long, device=device)
    was_training = model.training
    model.eval()
    try:
        log_probs = _log_probs(model, ids_tensor)
        saliency = _saliency(model, ids_tensor, window, batch_size)
    finally:
        model.train(was_training)
    return _assemble(
        tokenizer, ids, text, log_probs, saliency, window, min(top_k, log_probs.shape[-1])
    )


@torch.no_grad()
def _log_probs(model: LSTMLanguageModel, ids: torch.Tensor) -> torch.Tensor:
    """``(n - 1, V)`` float32 log-probabilities of the token after each position but the last."""
    rows: list[torch.Tensor] = []
    state: State | None = None
    inputs = ids[:-1]
    for start in range(0, len(inputs), _CHUNK):
        logits, state = model(inputs[None, start : start + _CHUNK], state, check=False)
        rows.append(logits[0].float().log_softmax(dim=-1))
    if not rows:
        return torch.empty((0, model.config.vocab_size), device=ids.device)
    return torch.cat(rows)


def _saliency(
    model: LSTMLanguageModel, ids: torch.Tensor, window: int, batch_size: int
) -> list[torch.Tensor]:
    """Per predicted token t = 1 .. n-1, the ``(min(t, window),)`` gradient norms.

    Each token t gets its own row in a batch: the ids of its window ``s = max(0, t - window) ..
    t - 1``, right-padded (padding after the last position cannot change the output there),
    entered with the true state after ``ids[:s]`` from a gradient-free pass. One backward pass
    of the summed log-probabilities then gives every row's gradients at once, because the rows
    do not interact.
    """
    targets = list(range(1, len(ids)))
    norms: list[torch.Tensor] = []
    position, state = 0, model.init_state(1)  # state after ids[:position]
    for first in range(0, len(targets), batch_size):
        batch = targets[first : first + batch_size]
        starts = [max(0, t - window) for t in batch]
        states: list[State] = []
        for start in starts:
            with torch.no_grad():
                if start > position:
                    _, state = model(ids[None, position:start], state, check=False)
                    position = start
            states.append(state)
        lengths = torch.tensor([t - s for t, s in zip(batch, starts, strict=True)])
        width = int(lengths.max())
        rows = torch.zeros((len(batch), width), dtype=torch.long, device=ids.device)
        for row, (start, t) in enumerate(zip(starts, batch, strict=True)):
            rows[row, : t - start] = ids[start:t]
        entry = tuple(torch.cat(parts, dim=1) for parts in zip(*states, strict=True))
        embeddings = F.embedding(rows, model.embedding.weight).detach().requires_grad_(True)
        logits, _ = model.forward_embeddings(embeddings, entry)
        last = logits[torch.arange(len(batch)), lengths.to(ids.device) - 1].float()
        wanted = ids[torch.tensor(batch, device=ids.device)]
        chosen = last.log_softmax(dim=-1).gather(1, wanted[:, None]).sum()
        (gradient,) = torch.autograd.grad(chosen, embeddings)
        batch_norms = gradient.detach().norm(dim=-1).cpu()
        norms += [batch_norms[row, :length] for row, length in enumerate(lengths.tolist())]
    return norms


class _TokenNames(dict[int, str]):
    """Token id -> its text, decoded once per distinct id."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        super().__init__()
        self.tokenizer = tokenizer

    def __missing__(self, token_id: int) -> str:
        self[token_id] = name = self.tokenizer.decode([token_id])
        return name


def _assemble(
    tokenizer: Tokenizer,
    ids: list[int],
    text: str,
    log_probs: torch.Tensor,
    saliency: list[torch.Tensor],
    window: int,
    top_k: int,
) -> Explanation:
    targets = torch.tensor(ids[1:], dtype=torch.long, device=log_probs.device)
    surprisal = (-log_probs.gather(1, targets[:, None]).squeeze(1)).double().cpu()
    top_values, top_ids = log_probs.exp().topk(top_k, dim=-1) if len(ids) > 1 else (None, None)
    names = _TokenNames(tokenizer)
    tokens = [TokenExplanation(0, names[ids[0]], None, [], [])]
    for t in range(1, len(ids)):
        assert top_values is not None and top_ids is not None
        top = [
            (names[int(i)], float(p))
            for i, p in zip(top_ids[t - 1].tolist(), top_values[t - 1].tolist(), strict=True)
        ]
        tokens.append(
            TokenExplanation(
                t, names[ids[t]], float(surprisal[t - 1]), top, saliency[t - 1].tolist()
            )
        )
    if len(ids) == 1:
        return Explanation(tokens, None, None, window)
    predicted = len(ids) - 1
    total = float(surprisal.sum())
    # The characters of the predicted tokens, counted as evaluate_split counts them.
    num_chars = max(1, round(len(text) * predicted / len(ids)))
    metrics = compute_metrics(total, predicted, num_chars=num_chars)
    return Explanation(tokens, total / predicted, metrics["bits_per_char"], window)


__all__ = ["Explanation", "TokenExplanation", "explain"]
