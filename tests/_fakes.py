"""Controllable stand-ins for the model and tokenizer in the sampler's tests: fixed or scripted
next-token tables and recorded forward calls make the processors' effects exact to check
(tests/test_sampler_real.py runs the same behaviour on the real model and tokenizers)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn

from textgen.tokenizers import Tokenizer, UnknownTokenError

EOS = "<eos>"


class FakeCharTokenizer(Tokenizer):
    """One token per character of ``chars`` (in that order), plus ``<eos>`` last when ``eos``."""

    kind = "fake-char"

    def __init__(self, chars: str = "\n abcdefgh", eos: bool = False) -> None:
        self.tokens = [*chars, *([EOS] if eos else [])]
        self.index = {t: i for i, t in enumerate(self.tokens)}

    def fit(self, texts: Iterable[str]) -> FakeCharTokenizer:
        return self

    def encode(self, text: str) -> list[int]:
        ids = []
        for i, ch in enumerate(text):
            if ch not in self.index:
                raise UnknownTokenError(
                    f"character {ch!r} at position {i} is not in the vocabulary"
                )
            ids.append(self.index[ch])
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(self.tokens[i] for i in ids if self.tokens[i] != EOS)

    @property
    def vocab_size(self) -> int:
        return len(self.tokens)

    @property
    def eos_id(self) -> int | None:
        return self.index.get(EOS)

    def _config(self) -> dict[str, Any]:
        return {"tokens": self.tokens}

    @classmethod
    def _from_config(cls, config: dict[str, Any]) -> FakeCharTokenizer:
        raise NotImplementedError


class FakeByteTokenizer(FakeCharTokenizer):
    """Byte-level: one token per UTF-8 byte, so a character like 'é' spans two tokens."""

    kind = "fake-byte"

    def __init__(self) -> None:
        self.tokens = [chr(i) for i in range(256)]
        self.index = {}

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids: Sequence[int]) -> str:
        return bytes(ids).decode("utf-8", errors="replace")

    def decode_bytes(self, ids: Sequence[int]) -> bytes:
        return bytes(ids)

    @property
    def eos_id(self) -> int | None:
        return None


class TinyLSTM(nn.Module):
    """Embedding -> nn.LSTM(batch_first) -> Linear, with the textgen model contract."""

    def __init__(
        self,
        vocab_size: int,
        embed_dim: int = 8,
        hidden_size: int = 16,
        num_layers: int = 2,
        seed: int = 0,
    ) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.embed = nn.Embedding(vocab_size, embed_dim)
        self.lstm = nn.LSTM(embed_dim, hidden_size, num_layers, batch_first=True, dropout=0.1)
        self.head = nn.Linear(hidden_size, vocab_size)
        self.calls: list[tuple[int, int]] = []  # (B, T) of every forward, to check O(1) stepping
        self.training_flags: list[bool] = []

    def init_state(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        weight = self.head.weight
        shape = (self.lstm.num_layers, batch_size, self.lstm.hidden_size)
        return (weight.new_zeros(shape), weight.new_zeros(shape))

    def forward(
        self, ids: torch.Tensor, state: tuple[torch.Tensor, ...] | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        self.calls.append(tuple(ids.shape))  # type: ignore[arg-type]
        self.training_flags.append(self.training)
        if state is None:
            state = self.init_state(ids.shape[0])
        output, (h, c) = self.lstm(self.embed(ids), (state[0], state[1]))
        return self.head(output), (h, c)


class TableModel(nn.Module):
    """Next-token logits depend only on the current token: ``logits = table[token]`` (V, V).

    A one-hot-ish table makes a deterministic script; a constant row gives a fixed distribution.
    """

    def __init__(self, table: torch.Tensor) -> None:
        super().__init__()
        self.table = nn.Parameter(table.float(), requires_grad=False)

    def forward(
        self, ids: torch.Tensor, state: tuple[torch.Tensor, ...] | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        if state is None:
            state = (self.table.new_zeros(1, ids.shape[0], 1),)
        return self.table[ids], state

    @classmethod
    def constant(cls, logits: Sequence[float]) -> TableModel:
        row = torch.tensor(logits)
        return cls(row.expand(len(logits), -1).clone())

    @classmethod
    def script(cls, tokenizer: Tokenizer, successor: dict[str, str]) -> TableModel:
        """Deterministically follow ``successor`` (char -> next char); other tokens go to id 0."""
        size = tokenizer.vocab_size
        table = torch.full((size, size), -20.0)
        table[:, 0] = 0.0
        for current, following in successor.items():
            a = tokenizer.encode(current)[0]
            b = tokenizer.eos_id if following == EOS else tokenizer.encode(following)[0]
            assert b is not None
            table[a] = -20.0
            table[a, b] = 20.0
        return cls(table)
