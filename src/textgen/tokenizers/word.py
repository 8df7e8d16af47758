"""`WordTokenizer`: words, punctuation and whitespace runs as tokens, with ``<unk>``.

Like PyTorch's word_language_model, but lossless: whitespace is kept as tokens, so
``decode(encode(s)) == s`` for text within the vocabulary.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from typing import Any, ClassVar

from textgen.tokenizers.base import (
    END_OF_TEXT,
    UNK_TOKEN,
    UnknownTokenError,
    _check_unknown,
    _TokenListTokenizer,
    _vocab_field,
    register_tokenizer,
)

# Words, runs of spaces/tabs, runs of newlines, and single punctuation characters. Every
# character falls in exactly one class, so the tokens always join back to the text.
_WORD_PATTERN = re.compile(r"\w+|[^\S\n]+|\n+|[^\w\s]")


@register_tokenizer
class WordTokenizer(_TokenListTokenizer):
    """Words, punctuation and whitespace runs as tokens, so ``decode(encode(s)) == s`` in vocab.

    Token classes: runs of word characters (``\\w+``), runs of spaces/tabs, runs of newlines,
    and single punctuation characters. The vocabulary always holds ``"<unk>"`` at id 0, then
    the kept tokens by decreasing count (ties by token text, so the order is deterministic),
    then `END_OF_TEXT` (placed between documents by the data pipeline, never produced by
    `encode`); tokens added later by `extend` follow, so existing ids never move.

    Args:
        min_freq: keep tokens seen at least this often in the training text.
        max_size: at most this many ids in all, ``"<unk>"`` and end-of-text included
            (None: no limit).
        unknown: ``"unk"`` (default) maps out-of-vocabulary tokens to ``"<unk>"``;
            ``"error"`` raises `UnknownTokenError` naming the token and its character position.

    Example:
        >>> tokenizer = WordTokenizer().fit(["to be, or not to be"])
        >>> tokenizer.decode(tokenizer.encode("not to be"))
        'not to be'
        >>> tokenizer.decode(tokenizer.encode("to sleep"))
        'to <unk>'
    """

    kind: ClassVar[str] = "word"

    def __init__(
        self, min_freq: int = 1, max_size: int | None = None, unknown: str = "unk"
    ) -> None:
        if isinstance(min_freq, bool) or not isinstance(min_freq, int) or min_freq < 1:
            raise ValueError(f"min_freq must be an integer >= 1, got {min_freq!r}")
        if max_size is not None and (
            isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 3
        ):
            raise ValueError(f"max_size must be None or an integer >= 3, got {max_size!r}")
        _check_unknown(unknown)
        self.min_freq = min_freq
        self.max_size = max_size
        self.unknown = unknown
        self._set_vocab([UNK_TOKEN])

    def _set_vocab(self, tokens: list[str]) -> None:
        self._tokens = tokens
        self._index = {token: i for i, token in enumerate(tokens)}

    def fit(self, texts: Iterable[str]) -> WordTokenizer:
        """Count tokens over ``texts`` (chunks; a token cut by a chunk boundary is rejoined)."""
        counts: Counter[str] = Counter()
        carry = ""
        for text in texts:
            tokens = _WORD_PATTERN.findall(carry + text)
            # The last token may continue in the next chunk; earlier boundaries are final.
            carry = tokens.pop() if tokens else ""
            counts.update(tokens)
        if carry:
            counts[carry] += 1
        kept = sorted(
            (token for token, count in counts.items() if count >= self.min_freq),
            key=lambda token: (-counts[token], token),
        )
        if self.max_size is not None:
            kept = kept[: self.max_size - 2]
        self._set_vocab([UNK_TOKEN, *kept, END_OF_TEXT])
        return self

    def new_symbols(self, texts: Iterable[str]) -> list[str]:
        """Tokens of ``texts`` kept under this tokenizer's ``min_freq`` that the vocabulary
        lacks, most frequent first."""
        scratch = WordTokenizer(min_freq=self.min_freq).fit(texts)
        return [t for t in scratch._tokens if t not in self._index]

    def _check_symbol(self, symbol: str) -> None:
        if symbol != END_OF_TEXT and _WORD_PATTERN.fullmatch(symbol) is None:
            raise ValueError(f"cannot add {symbol!r} to a word tokenizer: it is not one token")

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``.

        Raises:
            UnknownTokenError: a token is not in the vocabulary and ``unknown="error"``.
        """
        tokens = _WORD_PATTERN.findall(text)
        if self.unknown == "unk":
            index = self._index
            return [index.get(token, 0) for token in tokens]
        ids: list[int] = []
        position = 0
        for token in tokens:
            token_id = self._index.get(token)
            if token_id is None:
                raise UnknownTokenError(
                    f"word {token!r} at position {position} is not in the vocabulary; "
                    f"use unknown='unk' to map it to {UNK_TOKEN!r}"
                )
            ids.append(token_id)
            position += len(token)
        return ids

    @property
    def unk_id(self) -> int | None:
        return 0

    @property
    def is_fitted(self) -> bool:
        return any(t not in (UNK_TOKEN, END_OF_TEXT) for t in self._tokens)

    @property
    def vocab(self) -> list[str]:
        """The tokens, indexed by id (a copy)."""
        return list(self._tokens)

    def _config(self) -> dict[str, Any]:
        return {
            "min_freq": self.min_freq,
            "max_size": self.max_size,
            "unknown": self.unknown,
            "vocab": self._tokens,
        }

    @classmethod
    def _from_config(cls, config: dict[str, Any]) -> WordTokenizer:
        tokenizer = cls(
            min_freq=config.get("min_freq", 1),
            max_size=config.get("max_size"),
            unknown=config.get("unknown", "unk"),
        )
        vocab = _vocab_field(config)
        if vocab[:1] != [UNK_TOKEN]:
            raise ValueError(f"word tokenizer 'vocab' must start with {UNK_TOKEN!r}")
        tokenizer._set_vocab(vocab)
        return tokenizer
