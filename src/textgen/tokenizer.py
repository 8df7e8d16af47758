"""Tokenizers: text <-> token ids, the first step of the flow (text -> ids -> batches -> model).

Every tokenizer shares one interface (`Tokenizer`): ``fit`` on training text (an iterable of
chunks, so a corpus never has to sit in memory), ``encode``/``decode``, ``vocab_size``, and a JSON
form (``to_dict``/``from_dict``, ``save``/``load``) with a ``type`` and a ``format_version`` so a
checkpoint carries its tokenizer and can be read back by a later textgen.

Concrete tokenizers: `CharTokenizer` (Unicode code points), `WordTokenizer` (words, punctuation
and whitespace), and the byte-level `BPETokenizer` (in `textgen.bpe`).
"""

from __future__ import annotations

import importlib
import json
import re
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

TOKENIZER_FORMAT_VERSION = 1
UNK_TOKEN = "<unk>"


class UnknownTokenError(ValueError):
    """Text holds a symbol outside the vocabulary and the tokenizer was told not to map it."""


class Tokenizer(ABC):
    """The interface every tokenizer implements.

    Subclasses set ``kind`` (the ``type`` written to JSON) and register themselves with
    `register_tokenizer` so `tokenizer_from_dict` can rebuild them.
    """

    kind: ClassVar[str] = ""

    @abstractmethod
    def fit(self, texts: Iterable[str]) -> Tokenizer:
        """Build the vocabulary from training text given as chunks; returns ``self``."""

    @abstractmethod
    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``.

        Raises:
            UnknownTokenError: a symbol is not in the vocabulary and unknowns are not mapped.
        """

    @abstractmethod
    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids``; ``decode(encode(s)) == s`` for text within the vocabulary."""

    def encode_array(self, text: str) -> np.ndarray:
        """Token ids of ``text`` as a 1-D integer NumPy array (any integer dtype).

        The data pipeline encodes large corpora chunk by chunk through this method; subclasses
        may override it with a vectorised path. Same ids and errors as `encode`.
        """
        return np.asarray(self.encode(text), dtype=np.int64)

    @property
    def is_fitted(self) -> bool:
        """True once the tokenizer can encode text (`fit` ran, or it was loaded from JSON).

        The default says "fitted" when the vocabulary is not empty; subclasses whose unfitted
        vocabulary is not empty (special tokens, byte alphabets) override it.
        """
        return self.vocab_size > 0

    def decode_bytes(self, ids: Sequence[int]) -> bytes:
        """UTF-8 bytes of ``ids``. Streaming output feeds these to an incremental UTF-8 decoder,
        so a tokenizer whose tokens can split a character (byte-level BPE) prints whole characters.
        """
        return self.decode(ids).encode("utf-8")

    @property
    @abstractmethod
    def vocab_size(self) -> int:
        """Number of token ids (ids run from 0 to ``vocab_size - 1``)."""

    @property
    def eos_id(self) -> int | None:
        """Id of the end-of-sequence token, or None when the vocabulary has none."""
        return None

    @property
    def unk_id(self) -> int | None:
        """Id of the unknown token, or None when the vocabulary has none."""
        return None

    @abstractmethod
    def _config(self) -> dict[str, Any]:
        """The tokenizer's own fields for JSON (everything but ``type`` and ``format_version``)."""

    @classmethod
    @abstractmethod
    def _from_config(cls, config: dict[str, Any]) -> Tokenizer:
        """Inverse of `_config`; raise ValueError naming a missing or malformed field."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description: ``{"type", "format_version", ...fields}``."""
        return {"type": self.kind, "format_version": TOKENIZER_FORMAT_VERSION, **self._config()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Tokenizer:
        """Rebuild a tokenizer from `to_dict` output (any registered kind)."""
        return tokenizer_from_dict(data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False)

    def save(self, path: str | Path) -> None:
        """Write the JSON form to ``path`` (UTF-8)."""
        Path(path).write_text(self.to_json(), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> Tokenizer:
        """Read a tokenizer saved with `save`.

        Raises:
            FileNotFoundError: ``path`` does not exist.
            ValueError: the file is not a valid tokenizer JSON (the message names the path).
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"tokenizer file {path} does not exist")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ValueError(f"tokenizer file {path} is not valid JSON: {error}") from error
        try:
            return tokenizer_from_dict(data)
        except ValueError as error:
            raise ValueError(f"tokenizer file {path}: {error}") from error


_REGISTRY: dict[str, type[Tokenizer]] = {}


def register_tokenizer(cls: type[Tokenizer]) -> type[Tokenizer]:
    """Class decorator: make ``cls`` loadable by `tokenizer_from_dict` under ``cls.kind``."""
    if not cls.kind:
        raise ValueError(f"{cls.__name__} must set a non-empty 'kind'")
    _REGISTRY[cls.kind] = cls
    return cls


def tokenizer_from_dict(data: Any) -> Tokenizer:
    """Rebuild any registered tokenizer from its `Tokenizer.to_dict` form.

    Raises:
        ValueError: not a dict, unknown ``type``, unsupported ``format_version``, or bad fields.
    """
    if not isinstance(data, dict):
        raise ValueError(f"tokenizer data must be a JSON object, got {type(data).__name__}")
    kind = data.get("type")
    if kind == "bpe" and "bpe" not in _REGISTRY:
        importlib.import_module("textgen.bpe")  # registers BPETokenizer on first use
    if kind not in _REGISTRY:
        raise ValueError(
            f"unknown tokenizer type {kind!r}; expected one of {', '.join(sorted(_REGISTRY))}"
        )
    version = data.get("format_version")
    if version != TOKENIZER_FORMAT_VERSION:
        raise ValueError(
            f"unsupported tokenizer format_version {version!r}; this textgen reads "
            f"version {TOKENIZER_FORMAT_VERSION}"
        )
    config = {k: v for k, v in data.items() if k not in ("type", "format_version")}
    return _REGISTRY[kind]._from_config(config)


def build_tokenizer(kind: str, **options: Any) -> Tokenizer:
    """A new, unfitted tokenizer of a registered kind.

    Args:
        kind: ``"char"``, ``"word"`` or ``"bpe"`` (or any other registered kind).
        **options: constructor arguments of that tokenizer, e.g. ``unknown="unk"``.

    Returns:
        The tokenizer; call ``fit`` before encoding.

    Raises:
        ValueError: ``kind`` is not a registered tokenizer, or an option value is invalid.
        TypeError: an option is not accepted by that tokenizer.

    Example:
        >>> tokenizer = build_tokenizer("char").fit(["hello"])
        >>> tokenizer.decode(tokenizer.encode("hole"))
        'hole'
    """
    if kind == "bpe" and "bpe" not in _REGISTRY:
        importlib.import_module("textgen.bpe")
    if kind not in _REGISTRY:
        raise ValueError(
            f"unknown tokenizer kind {kind!r}; expected one of {', '.join(sorted(_REGISTRY))}"
        )
    try:
        return _REGISTRY[kind](**options)
    except TypeError as error:
        raise TypeError(f"invalid options for the {kind!r} tokenizer: {error}") from error


def _check_unknown(unknown: str) -> None:
    if unknown not in ("error", "unk"):
        raise ValueError(f"unknown must be 'error' or 'unk', got {unknown!r}")


def _check_ids(ids: Sequence[int], vocab_size: int) -> None:
    for i in ids:
        if not 0 <= i < vocab_size:
            raise ValueError(f"token id {i} is out of range for a vocabulary of {vocab_size}")


def _vocab_field(config: dict[str, Any]) -> list[str]:
    vocab = config.get("vocab")
    if not isinstance(vocab, list) or not all(isinstance(t, str) for t in vocab):
        raise ValueError("tokenizer field 'vocab' must be a list of strings")
    if len(set(vocab)) != len(vocab):
        raise ValueError("tokenizer field 'vocab' holds duplicate tokens")
    return vocab


def _code_points(text: str) -> np.ndarray:
    """Code points of ``text``: uint8 for ASCII text (the fast, common case), else uint32."""
    if text.isascii():
        return np.frombuffer(text.encode("ascii"), dtype=np.uint8)
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")


class _TokenListTokenizer(Tokenizer):
    """A tokenizer whose id ``i`` stands for the string ``self._tokens[i]`` (char and word)."""

    _tokens: list[str]

    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids``; the ``<unk>`` id decodes to ``"<unk>"``.

        Raises:
            ValueError: an id is outside ``[0, vocab_size)``.
        """
        _check_ids(ids, len(self._tokens))
        tokens = self._tokens
        return "".join([tokens[i] for i in ids])

    @property
    def vocab_size(self) -> int:
        return len(self._tokens)


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


# Words, runs of spaces/tabs, runs of newlines, and single punctuation characters. Every
# character falls in exactly one class, so the tokens always join back to the text.
_WORD_PATTERN = re.compile(r"\w+|[^\S\n]+|\n+|[^\w\s]")


@register_tokenizer
class WordTokenizer(_TokenListTokenizer):
    """Words, punctuation and whitespace runs as tokens, so ``decode(encode(s)) == s`` in vocab.

    Token classes: runs of word characters (``\\w+``), runs of spaces/tabs, runs of newlines,
    and single punctuation characters. The vocabulary always holds ``"<unk>"`` at id 0, then
    the kept tokens by decreasing count (ties by token text, so the order is deterministic).

    Args:
        min_freq: keep tokens seen at least this often in the training text.
        max_size: at most this many ids in all, ``"<unk>"`` included (None: no limit).
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
            isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 2
        ):
            raise ValueError(f"max_size must be None or an integer >= 2, got {max_size!r}")
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
            kept = kept[: self.max_size - 1]
        self._set_vocab([UNK_TOKEN, *kept])
        return self

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
        return len(self._tokens) > 1

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
