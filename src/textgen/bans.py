"""Banned strings, checked on the text: which next tokens would make the output contain one.

``bad_words`` (``--ban``) promises strings the output never contains. Banning one tokenization
of a string is not enough: with BPE ``"the"`` is ``[258, 101]`` but ``" the"`` is one token
that contains it, and with the word tokenizer ``"thee"`` contains ``"the"``. `StringBans`
therefore works on the decoded bytes (UTF-8, so a byte match is a character match): a
candidate token is banned when the text so far, followed by the token's bytes, contains a
banned string ending inside that token. Two tables, built once per tokenizer and string, make
the per-step check a few ``bytes.endswith`` calls per row and one boolean mask per hit:

* ``always``: tokens whose bytes contain a banned string;
* for each split ``s = head + rest`` (``head``, ``rest`` non-empty): the tokens whose bytes start
  with ``rest``; they are banned in rows whose text ends with ``head``.

A string spanning several tokens is caught at the token that completes it, so the guarantee
holds across any token boundaries, including the one between the prompt and the continuation.
The end-of-sequence token ends the text and adds none, so it is never banned.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from textgen.tokenizers import Tokenizer
from textgen.validation import InvalidValueError


class StringBans:
    """Which tokens may not come next, so that no banned string appears in the decoded text.

    Args:
        strings: the banned strings (non-empty).
        tokenizer: the model's tokenizer (its ``decode_bytes`` of one token is that token's
            text; concatenating tokens concatenates their bytes).

    Raises:
        ValueError: a string is empty.

    Example:
        >>> from textgen.tokenizers import CharTokenizer
        >>> bans = StringBans(["ab"], CharTokenizer().fit(["abc"]))
        >>> bans.banned([[0], [2]], vocab_size=3).tolist()   # text "a" may not go on with "b"
        [[False, True, False], [False, False, False]]
    """

    def __init__(self, strings: Sequence[str], tokenizer: Tokenizer) -> None:
        patterns = [s.encode("utf-8") for s in strings]
        if not all(patterns):
            raise InvalidValueError("bad_words", "bad_words must hold non-empty strings")
        size = tokenizer.vocab_size
        texts = [tokenizer.decode_bytes([i]) for i in range(size)]
        if tokenizer.eos_id is not None and tokenizer.eos_id < size:
            texts[tokenizer.eos_id] = b""  # ends the text: adds nothing to it
        self.tokenizer = tokenizer
        self.always = torch.tensor([any(p in t for p in patterns) for t in texts])
        # (head, tokens starting with the rest): banned after a text ending with head
        self.after: list[tuple[bytes, torch.Tensor]] = []
        for pattern in patterns:
            for cut in range(1, len(pattern)):
                head, rest = pattern[:cut], pattern[cut:]
                mask = torch.tensor([t.startswith(rest) for t in texts])
                if bool(mask.any()):
                    self.after.append((head, mask))
        # Every token but the end-of-sequence adds at least one byte, so this many trailing
        # tokens always hold the longest head.
        self.tail_tokens = max(len(p) for p in patterns) - 1

    def banned(self, histories: Sequence[Sequence[int]], vocab_size: int) -> torch.Tensor:
        """``(B, vocab_size)`` bool: True for the tokens row ``b`` may not take next.

        Args:
            histories: each row's ids so far (only the last `tail_tokens` are read).
            vocab_size: V of the scores (ids past the tokenizer's are not banned here).
        """
        rows = torch.zeros(len(histories), vocab_size, dtype=torch.bool)
        size = min(vocab_size, len(self.always))
        rows[:, :size] = self.always[:size]
        if self.after and self.tail_tokens:
            for b, ids in enumerate(histories):
                tail = self.tokenizer.decode_bytes(list(ids[-self.tail_tokens :]))
                for head, mask in self.after:
                    if tail.endswith(head):
                        rows[b, :size] |= mask[:size]
        return rows

    def mask_scores(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        """``scores`` (B, V) with the banned next tokens of each row of ``input_ids`` at -inf."""
        histories: list[list[int]] = [[] for _ in range(scores.shape[0])]
        if self.after and self.tail_tokens and input_ids.shape[1]:
            histories = input_ids[:, -self.tail_tokens :].tolist()
        banned = self.banned(histories, scores.shape[-1]).to(scores.device)
        return scores.masked_fill(banned, float("-inf"))


__all__ = ["StringBans"]
