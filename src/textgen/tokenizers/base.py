"""The tokenizer interface and registry: text <-> token ids, the first step of the flow.

Every tokenizer shares one interface (`Tokenizer`): ``fit`` on training text (an iterable of
chunks, so a corpus never has to sit in memory), ``encode``/``decode``, ``vocab_size``, and a JSON
form (``to_dict``/``from_dict``, ``save``/``load``) with a ``type`` and a ``format_version`` so a
checkpoint carries its tokenizer and can be read back by a later textgen. Concrete tokenizers
register themselves with `register_tokenizer`; importing `textgen.tokenizers` registers them all.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from textgen.atomic import atomic_write_text
from textgen.validation import check_choice

#: Version 2 gave the char and word tokenizers an end-of-text token and let a fine-tuned
#: vocabulary grow at its end (`Tokenizer.extend`); version 1 files are still read.
TOKENIZER_FORMAT_VERSION = 2
_READABLE_VERSIONS = (1, 2)
UNK_TOKEN = "<unk>"
#: The end-of-text token: between documents in the training stream, where generation stops.
END_OF_TEXT = "<|endoftext|>"


class UnknownTokenError(ValueError):
    """Text holds a symbol outside the vocabulary and the tokenizer was told not to map it."""

    #: the setting that changes this (a front end names its own spelling of it)
    parameters: tuple[str, ...] = ("unknown",)


class Tokenizer(ABC):
    """The interface every tokenizer implements.

    Subclasses set ``kind`` (the ``type`` written to JSON) and register themselves with
    `register_tokenizer` so `tokenizer_from_dict` can rebuild them.
    """

    kind: ClassVar[str] = ""
    #: True when `fit` only collects the text's symbols and learns no statistics from it (the
    #: character tokenizer): `prepare_corpus` then fits it on the validation text too, so a
    #: symbol that occurs only there (common in Chinese or Japanese text, or any text with rare
    #: symbols) is still encodable. The validation text contributes its alphabet, no counts.
    fits_alphabet_only: ClassVar[bool] = False

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

    def new_symbols(self, texts: Iterable[str]) -> list[str]:
        """Symbols of ``texts`` (chunks) that this tokenizer lacks, for `extend`.

        The default (a tokenizer with nothing unknown, such as byte-level BPE) finds none.
        """
        return []

    def extend(self, symbols: Iterable[str]) -> list[str]:
        """Add ``symbols`` to the end of the vocabulary (fine-tuning on text with new symbols);
        ids of existing tokens never change. Returns the symbols actually added.

        Raises:
            ValueError: this kind of tokenizer cannot grow (byte-level BPE: nothing is unknown),
                or a symbol is not a token this tokenizer could produce.
        """
        symbols = list(symbols)
        if symbols:
            raise ValueError(
                f"the {self.kind} tokenizer cannot be extended with {symbols[:5]!r}; it keeps "
                "its vocabulary when fine-tuned"
            )
        return []

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
        atomic_write_text(path, self.to_json(), what="tokenizer")

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
    if kind not in _REGISTRY:
        raise ValueError(
            f"unknown tokenizer type {kind!r}; expected one of {', '.join(sorted(_REGISTRY))}"
        )
    version = data.get("format_version")
    if version not in _READABLE_VERSIONS:
        raise ValueError(
            f"unsupported tokenizer format_version {version!r}; this textgen reads "
            f"versions {', '.join(map(str, _READABLE_VERSIONS))}"
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
    if kind not in _REGISTRY:
        raise ValueError(
            f"unknown tokenizer kind {kind!r}; expected one of {', '.join(sorted(_REGISTRY))}"
        )
    try:
        return _REGISTRY[kind](**options)
    except TypeError as error:
        raise TypeError(f"invalid options for the {kind!r} tokenizer: {error}") from error


def _check_unknown(unknown: str) -> None:
    check_choice("unknown", unknown, ("error", "unk"))


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


class _TokenListTokenizer(Tokenizer):
    """A tokenizer whose id ``i`` stands for the string ``self._tokens[i]`` (char and word).

    A fitted vocabulary ends with `END_OF_TEXT`; tokens added by `extend` come after it, so the
    ids a model was trained with never move.
    """

    _tokens: list[str]
    _index: dict[str, int]

    @property
    def eos_id(self) -> int | None:
        """Id of `END_OF_TEXT`; None for a vocabulary saved before it existed (format 1)."""
        return self._index.get(END_OF_TEXT)

    def extend(self, symbols: Iterable[str]) -> list[str]:
        """Append the symbols not yet in the vocabulary; returns those added, in order.

        Raises:
            ValueError: a symbol is not a token of this tokenizer (see `_check_symbol`).
        """
        added: list[str] = []
        for symbol in symbols:
            if symbol not in self._index and symbol not in added:
                self._check_symbol(symbol)
                added.append(symbol)
        if added:
            self._set_vocab([*self._tokens, *added])
        return added

    def _check_symbol(self, symbol: str) -> None:
        """Raise ValueError when ``symbol`` cannot be one of this tokenizer's tokens."""

    def _set_vocab(self, tokens: list[str]) -> None:
        raise NotImplementedError

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
