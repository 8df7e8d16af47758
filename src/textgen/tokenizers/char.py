"""`CharTokenizer`: one token per Unicode code point, the char-rnn way.

Encoding is a vectorised table lookup over the text's code points (NumPy), so the data pipeline
encodes hundreds of MB per minute. Besides characters the vocabulary holds `END_OF_TEXT` (placed
between documents by the data pipeline, never produced by `encode`) and, with
``unknown="unk"``, ``"<unk>"``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

import numpy as np

from textgen.tokenizers.base import (
    END_OF_TEXT,
    UNK_TOKEN,
    UnknownTokenError,
    _check_unknown,
    _TokenListTokenizer,
    _vocab_field,
    register_tokenizer,
)


def _code_points(text: str) -> np.ndarray:
    """Code points of ``text``: uint8 for ASCII text (the fast, common case), else uint32."""
    if text.isascii():
        return np.frombuffer(text.encode("ascii"), dtype=np.uint8)
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")


@register_tokenizer
class CharTokenizer(_TokenListTokenizer):
    """One token per Unicode code point.

    A fitted vocabulary is ``"<unk>"`` (with ``unknown="unk"``), the characters of the training
    text sorted by code point, then `END_OF_TEXT`; characters added later by `extend` (when
    fine-tuning on new text) follow, so existing ids never move.

    Args:
        unknown: ``"error"`` (default) raises `UnknownTokenError` for a character outside the
            vocabulary; ``"unk"`` adds a ``"<unk>"`` token (id 0) and maps such characters to it.

    Example:
        >>> tokenizer = CharTokenizer().fit(["abc\\n", "héllo"])
        >>> tokenizer.encode("hé")
        [4, 7]
        >>> tokenizer.decode([4, 7])
        'hé'
        >>> tokenizer.eos_id == tokenizer.vocab_size - 1
        True
    """

    kind: ClassVar[str] = "char"
    fits_alphabet_only: ClassVar[bool] = True

    def __init__(self, unknown: str = "error") -> None:
        _check_unknown(unknown)
        self.unknown = unknown
        self._set_vocab([UNK_TOKEN] if unknown == "unk" else [])

    def _set_vocab(self, tokens: list[str]) -> None:
        """Use ``tokens`` (the whole vocabulary, by id) and rebuild the lookup tables."""
        self._tokens = tokens
        self._index = {token: i for i, token in enumerate(tokens)}
        chars = [(i, token) for i, token in enumerate(tokens) if len(token) == 1]
        self._num_chars = len(chars)
        # Lookup table code point -> id (-1: unknown), plus one sentinel slot for code points
        # past the largest known one; makes encoding a vectorised gather instead of a dict loop.
        size = max((ord(ch) for _, ch in chars), default=-1) + 2
        self._table = np.full(size, -1, dtype=np.int32)
        for i, ch in chars:
            self._table[ord(ch)] = i
        self._ascii_table = np.full(128, -1, dtype=np.int32)
        self._ascii_table[: min(size, 128)] = self._table[:128]

    def fit(self, texts: Iterable[str]) -> CharTokenizer:
        """Collect the characters of ``texts`` (chunks, read one at a time); returns ``self``."""
        seen = np.zeros(0x110000, dtype=bool)  # one flag per possible code point
        for text in texts:
            seen[_code_points(text)] = True
        chars = [chr(code) for code in np.flatnonzero(seen)]
        special = [UNK_TOKEN] if self.unknown == "unk" else []
        self._set_vocab([*special, *chars, END_OF_TEXT] if chars else special)
        return self

    def new_symbols(self, texts: Iterable[str]) -> list[str]:
        """Characters of ``texts`` missing from the vocabulary, in code point order."""
        scratch = CharTokenizer().fit(texts)
        return [ch for ch in scratch._tokens if len(ch) == 1 and ch not in self._index]

    def _check_symbol(self, symbol: str) -> None:
        if len(symbol) != 1 and symbol != END_OF_TEXT:
            raise ValueError(
                f"cannot add {symbol!r} to a char tokenizer: tokens are single characters "
                f"(or {END_OF_TEXT!r})"
            )

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``, one per code point.

        Raises:
            UnknownTokenError: a character is not in the vocabulary and ``unknown="error"``.
            ValueError: the tokenizer is not fitted.
        """
        ids: list[int] = self.encode_array(text).tolist()
        return ids

    def encode_array(self, text: str) -> np.ndarray:
        """Token ids of ``text`` as an int32 array of shape (len(text),); see `encode`."""
        if not text:
            return np.zeros(0, dtype=np.int32)
        if not self._num_chars:
            raise ValueError("CharTokenizer is not fitted; call fit(texts) first")
        codes = _code_points(text)
        if codes.dtype == np.uint8:
            ids = self._ascii_table[codes]
        else:
            ids = self._table[np.minimum(codes, len(self._table) - 1)]
        unknown = ids < 0
        if unknown.any():
            if self.unknown == "unk":
                ids[unknown] = 0
            else:
                position = int(np.argmax(unknown))
                raise UnknownTokenError(
                    f"character {text[position]!r} at position {position} is not in the "
                    f"vocabulary; fit on text that contains it or use unknown='unk'"
                )
        return ids

    @property
    def unk_id(self) -> int | None:
        return 0 if self.unknown == "unk" else None

    @property
    def is_fitted(self) -> bool:
        return self._num_chars > 0

    @property
    def vocab(self) -> list[str]:
        """The tokens, indexed by id (a copy)."""
        return list(self._tokens)

    def _config(self) -> dict[str, Any]:
        return {"unknown": self.unknown, "vocab": self._tokens}

    @classmethod
    def _from_config(cls, config: dict[str, Any]) -> CharTokenizer:
        # Format 1 vocabularies (sorted characters, no end-of-text) pass the same checks.
        unknown = config.get("unknown", "error")
        _check_unknown(unknown)
        vocab = _vocab_field(config)
        if unknown == "unk" and vocab[:1] != [UNK_TOKEN]:
            raise ValueError(f"char tokenizer with unknown='unk' must start with {UNK_TOKEN!r}")
        rest = vocab[1:] if unknown == "unk" else vocab
        if any(len(token) != 1 and token != END_OF_TEXT for token in rest):
            raise ValueError(
                f"char tokenizer 'vocab' must hold single characters (and {END_OF_TEXT!r})"
            )
        tokenizer = cls(unknown=unknown)
        tokenizer._set_vocab(vocab)
        return tokenizer
