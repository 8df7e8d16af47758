"""`CharTokenizer`: one token per Unicode code point, the char-rnn way.

Encoding is a vectorised table lookup over the text's code points (NumPy), so the data pipeline
encodes hundreds of MB per minute.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

import numpy as np

from textgen.tokenizers.base import (
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
    """One token per Unicode code point; the vocabulary is sorted by code point.

    Args:
        unknown: ``"error"`` (default) raises `UnknownTokenError` for a character outside the
            vocabulary; ``"unk"`` adds a ``"<unk>"`` token (id 0) and maps such characters to it.

    Example:
        >>> tokenizer = CharTokenizer().fit(["abc\\n", "héllo"])
        >>> tokenizer.encode("hé")
        [4, 7]
        >>> tokenizer.decode([4, 7])
        'hé'
    """

    kind: ClassVar[str] = "char"
    fits_alphabet_only: ClassVar[bool] = True

    def __init__(self, unknown: str = "error") -> None:
        _check_unknown(unknown)
        self.unknown = unknown
        self._set_vocab([])

    def _set_vocab(self, chars: list[str]) -> None:
        self._chars = chars
        self._tokens = [UNK_TOKEN, *chars] if self.unknown == "unk" else list(chars)
        self._index = {token: i for i, token in enumerate(self._tokens)}
        offset = len(self._tokens) - len(chars)
        # Lookup table code point -> id (-1: unknown), plus one sentinel slot for code points
        # past the largest known one; makes encoding a vectorised gather instead of a dict loop.
        size = (ord(chars[-1]) + 2) if chars else 1
        self._table = np.full(size, -1, dtype=np.int32)
        for i, ch in enumerate(chars):
            self._table[ord(ch)] = offset + i
        self._ascii_table = np.full(128, -1, dtype=np.int32)
        self._ascii_table[: min(size, 128)] = self._table[:128]

    def fit(self, texts: Iterable[str]) -> CharTokenizer:
        """Collect the characters of ``texts`` (chunks, read one at a time); returns ``self``."""
        seen = np.zeros(0x110000, dtype=bool)  # one flag per possible code point
        for text in texts:
            seen[_code_points(text)] = True
        self._set_vocab([chr(code) for code in np.flatnonzero(seen)])
        return self

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
        if not self._chars:
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
        return bool(self._chars)

    @property
    def vocab(self) -> list[str]:
        """The tokens, indexed by id (a copy)."""
        return list(self._tokens)

    def _config(self) -> dict[str, Any]:
        return {"unknown": self.unknown, "vocab": self._tokens}

    @classmethod
    def _from_config(cls, config: dict[str, Any]) -> CharTokenizer:
        unknown = config.get("unknown", "error")
        _check_unknown(unknown)
        vocab = _vocab_field(config)
        chars = vocab[1:] if unknown == "unk" else vocab
        if unknown == "unk" and vocab[:1] != [UNK_TOKEN]:
            raise ValueError(f"char tokenizer with unknown='unk' must start with {UNK_TOKEN!r}")
        if any(len(ch) != 1 for ch in chars) or chars != sorted(chars):
            raise ValueError("char tokenizer 'vocab' must be single characters in code point order")
        tokenizer = cls(unknown=unknown)
        tokenizer._set_vocab(chars)
        return tokenizer
