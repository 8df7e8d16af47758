"""The language model: token embedding -> stacked LSTM/GRU -> linear head over the vocabulary.

It sits between the data batches and the loss: `data` yields int64 ``(B, T)`` ids, the model
turns them into raw next-token scores ``(B, T, V)`` plus the recurrent state, and `loss` compares
those scores with the shifted targets. The sampler runs the same `forward` one token at a time,
carrying the state, so the model never needs a separate "generation" path.

The recurrent layers are stock `nn.LSTM` / `nn.GRU` modules (fused over time by cuDNN / oneDNN).
The awd-lstm-lm regularisers that fit on a stock cell are available: whole-word embedding dropout,
locked (variational) dropout and residual connections between stacked layers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from textgen.dropout import dropout
from textgen.options import option
from textgen.validation import (
    InvalidValueError,
    check_bool,
    check_choice,
    check_float,
    check_int,
)

State = tuple[torch.Tensor, ...]
"""Recurrent state: ``(h, c)`` for an LSTM, ``(h,)`` for a GRU; each tensor ``(L, B, H)``."""

CELLS = ("lstm", "gru")
_INIT_RANGE = 0.1


@dataclass(frozen=True)
class ModelConfig:
    """Shape and regularisation of an `LSTMLanguageModel`.

    Attributes:
        vocab_size: number of token ids V (the tokenizer's ``vocab_size``).
        embed_dim: size E of a token embedding.
        hidden_size: size H of each recurrent layer's state.
        num_layers: number of stacked recurrent layers L.
        dropout: drop probability on the embedding output, between stacked layers and before
            the output head.
        embed_dropout: probability of dropping a whole vocabulary entry (every occurrence of a
            token in the batch sees a zero embedding), as in awd-lstm-lm.
        locked_dropout: when True every ``dropout`` site uses one mask per sequence, shared by all
            time steps (variational dropout); when False masks are drawn per element.
        tie_weights: share the embedding matrix with the output head. When ``hidden_size !=
            embed_dim`` a bias-free projection ``H -> E`` is put before the tied head.
        cell: ``"lstm"`` or ``"gru"``.
        residual: add each stacked layer's input to its output (layers 2..L).
    """

    vocab_size: int
    embed_dim: int = option(128, "size of a token embedding")
    hidden_size: int = option(384, "units (state size) of each recurrent layer")
    num_layers: int = option(2, "stacked recurrent layers")
    dropout: float = option(
        0.1, "drop probability on the embedding output, between layers and before the head"
    )
    embed_dropout: float = option(0.0, "probability of dropping a whole token's embedding")
    locked_dropout: bool = option(
        False, "one dropout mask per sequence, shared by all time steps (variational dropout)"
    )
    tie_weights: bool = option(False, "share the embedding matrix with the output head")
    cell: str = option("lstm", "the recurrent cell", choices=CELLS)
    residual: bool = option(False, "add each stacked layer's input to its output")

    def __post_init__(self) -> None:
        for name in ("vocab_size", "embed_dim", "hidden_size", "num_layers"):
            check_int(name, getattr(self, name), minimum=1)
        for name in ("dropout", "embed_dropout"):
            check_float(name, getattr(self, name), minimum=0, maximum=1, max_inclusive=False)
        for name in ("locked_dropout", "tie_weights", "residual"):
            check_bool(name, getattr(self, name))
        check_choice("cell", self.cell, CELLS)
        if self.residual and self.num_layers < 2:
            raise InvalidValueError(
                "residual",
                f"residual=True needs num_layers >= 2 (residuals join stacked layers), "
                f"got num_layers={self.num_layers}",
            )


class LSTMLanguageModel(nn.Module):
    """Embedding -> dropout -> stacked LSTM/GRU -> dropout -> (projection) -> linear head.

    Initialisation: embedding (and an untied head) uniform in [-0.1, 0.1] as in PyTorch's
    word_language_model; head bias zero; the recurrent weights and biases keep PyTorch's uniform
    [-1/sqrt(H), 1/sqrt(H)]. A forget-gate bias of 1 (zero biases elsewhere), the usual advice,
    was measured worse here: on a 2 x 256 LSTM after 600 steps of textgen's recipe the held-out
    loss was 1.52 with PyTorch's biases and 1.81 with the forget bias (training loss 1.50 and
    1.72), and early on the forget bias fitted the training text far better than held-out text
    (2.20 against 2.77 nats after 150 steps; docs/performance.md).

    Layout: with neither ``locked_dropout`` nor ``residual`` the stack is one multi-layer
    `nn.LSTM` (fastest: cuDNN pipelines the layers); otherwise one single-layer module per layer,
    each still fused over time. Parameter names are ``layers.<i>.*`` in both cases. Training on
    the CPU with dropout between layers runs the fused module's layers one at a time, so that
    the masks between them are drawn by `textgen.dropout` (faster there than the module's own).

    Args:
        config: the model's `ModelConfig`.

    Example:
        >>> model = LSTMLanguageModel(ModelConfig(vocab_size=20, embed_dim=8, hidden_size=16))
        >>> logits, state = model(torch.zeros(2, 5, dtype=torch.long))
        >>> logits.shape, state[0].shape
        (torch.Size([2, 5, 20]), torch.Size([2, 2, 16]))
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.embedding = nn.Embedding(c.vocab_size, c.embed_dim)
        rnn_class = nn.LSTM if c.cell == "lstm" else nn.GRU
        self._fused = not (c.locked_dropout or c.residual)
        if self._fused:
            between = c.dropout if c.num_layers > 1 else 0.0
            self.layers = nn.ModuleList(
                [
                    rnn_class(
                        c.embed_dim, c.hidden_size, c.num_layers, batch_first=True, dropout=between
                    )
                ]
            )
        else:
            self.layers = nn.ModuleList(
                rnn_class(c.embed_dim if i == 0 else c.hidden_size, c.hidden_size, batch_first=True)
                for i in range(c.num_layers)
            )
        head_dim = c.embed_dim if c.tie_weights else c.hidden_size
        self.projection: nn.Linear | None = None
        if c.tie_weights and c.hidden_size != c.embed_dim:
            self.projection = nn.Linear(c.hidden_size, c.embed_dim, bias=False)
        self.head = nn.Linear(head_dim, c.vocab_size)
        self._init_weights()
        if c.tie_weights:
            self.head.weight = self.embedding.weight

    def _init_weights(self) -> None:
        nn.init.uniform_(self.embedding.weight, -_INIT_RANGE, _INIT_RANGE)
        nn.init.uniform_(self.head.weight, -_INIT_RANGE, _INIT_RANGE)
        nn.init.zeros_(self.head.bias)
        # The recurrent layers keep the initialisation nn.LSTM / nn.GRU gave them (see above).

    @property
    def state_size(self) -> int:
        """Number of tensors in a `State`: 2 for an LSTM (h, c), 1 for a GRU (h)."""
        return 2 if self.config.cell == "lstm" else 1

    def num_parameters(self, *, trainable_only: bool = False) -> int:
        """Number of scalar parameters; a tied matrix is counted once."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def init_state(self, batch_size: int) -> State:
        """Zero state for ``batch_size`` sequences on the model's device and dtype.

        Returns:
            A `State` of ``state_size`` tensors, each ``(L, B, H)``.
        """
        check_int("batch_size", batch_size, minimum=1)
        weight = self.embedding.weight
        shape = (self.config.num_layers, batch_size, self.config.hidden_size)
        return tuple(
            torch.zeros(shape, device=weight.device, dtype=weight.dtype)
            for _ in range(self.state_size)
        )

    def forward(
        self, ids: torch.Tensor, state: State | None = None, *, check: bool = True
    ) -> tuple[torch.Tensor, State]:
        """Score the next token at every position.

        Args:
            ids: int64 token ids ``(B, T)``, values in ``[0, V)``.
            state: recurrent state from a previous call (each tensor ``(L, B, H)``), or None for
                zeros. Callers doing truncated BPTT detach it between windows (`detach_state`).
            check: validate ``ids`` and ``state`` (types and shapes) first. Loops that built
                their inputs themselves (the Trainer's step, the Sampler's decoding step) pass
                False: they validated once at their own entry, and a per-token check costs time.

        Returns:
            ``(logits, state)``: raw scores ``(B, T, V)`` in the model's dtype and the state after
            the last position.

        Raises:
            TypeError: ``ids`` is not an int64 tensor, or ``state`` is not a tuple of tensors.
            ValueError: ``ids`` is not 2-D / is empty, or ``state`` has the wrong shape.
        """
        if check:
            self._check_ids(ids)
            if state is not None:
                self._check_state(state, int(ids.shape[0]))
        return self.forward_embeddings(self._embed(ids), state)

    def forward_embeddings(
        self, embeddings: torch.Tensor, state: State | None = None
    ) -> tuple[torch.Tensor, State]:
        """`forward` from the embedding lookup's output instead of token ids.

        Gradient methods differentiate with respect to the input embeddings (saliency in
        `textgen.explain`): they look ids up themselves, make the result a leaf that requires
        grad, and run the rest of the model from here. Inputs are not checked.

        Args:
            embeddings: ``(B, T, E)`` in the model's dtype, e.g. ``model.embedding(ids)``.
            state: as in `forward`; None for zeros.

        Returns:
            ``(logits, state)`` as in `forward`.
        """
        if state is None:
            state = self.init_state(int(embeddings.shape[0]))
        x = self._drop(embeddings)
        x, new_state = self._run_layers(x, state)
        x = self._drop(x)
        if self.projection is not None:
            x = self.projection(x)
        return self.head(x), new_state

    def _embed(self, ids: torch.Tensor) -> torch.Tensor:
        weight = self.embedding.weight
        p = self.config.embed_dropout
        if self.training and p > 0:
            # Whole-word dropout: zero entire rows of the table, so every occurrence of a dropped
            # token in this batch looks the same (awd-lstm-lm's embedded_dropout).
            keep = torch.empty((weight.shape[0], 1), device=weight.device, dtype=weight.dtype)
            weight = weight * keep.bernoulli_(1 - p) / (1 - p)
        return F.embedding(ids, weight)

    def _drop(self, x: torch.Tensor) -> torch.Tensor:
        p = self.config.dropout
        if not self.config.locked_dropout:
            return dropout(x, p, training=self.training)
        # Locked dropout: one mask per sequence, shared by all time steps.
        return dropout(x, p, training=self.training, mask_shape=(x.shape[0], 1, x.shape[2]))

    def _run_layers(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        if self._fused and not self._split_fused_stack(x):
            out, new = self.layers[0](x, self._to_module_state(state))
            return out, self._from_module_state(new)
        layer_states = []
        for i in range(self.config.num_layers):
            inputs = x if i == 0 else self._drop(x)
            out, new = self._run_layer(i, inputs, tuple(s[i : i + 1] for s in state))
            x = out + x if self.config.residual and i > 0 else out
            layer_states.append(new)
        return x, tuple(torch.cat(parts, dim=0) for parts in zip(*layer_states, strict=True))

    def _split_fused_stack(self, x: torch.Tensor) -> bool:
        """Whether to run the fused multi-layer module one layer at a time.

        On the CPU, training with dropout between layers: the fused module draws that mask
        with ``bernoulli_``, which is slow there (`textgen.dropout`), and oneDNN runs the layers
        one after another anyway, so splitting costs nothing. On CUDA the fused module stays
        whole (cuDNN pipelines the layers and draws masks fast).
        """
        return (
            self.training
            and self.config.dropout > 0
            and self.config.num_layers > 1
            and x.device.type == "cpu"
        )

    def _run_layer(self, i: int, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """Layer ``i`` alone, from its own module or from its slice of the fused module."""
        if not self._fused:
            out, new = self.layers[i](x, self._to_module_state(state))
            return out, self._from_module_state(new)
        # The fused module's layer-i weights through the same op nn.LSTM / nn.GRU call
        # (``torch.lstm`` / ``torch.gru``), as a one-layer stack without dropout.
        rnn = self.layers[0]
        weights = [
            getattr(rnn, f"{name}_l{i}")
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
        ]
        if self.config.cell == "lstm":
            out, h, c = torch.lstm(x, state, weights, True, 1, 0.0, True, False, True)
            return out, (h, c)
        out, h = torch.gru(x, state[0], weights, True, 1, 0.0, True, False, True)
        return out, (h,)

    def _to_module_state(self, state: State) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        return (state[0], state[1]) if self.config.cell == "lstm" else state[0]

    @staticmethod
    def _from_module_state(state: torch.Tensor | tuple[torch.Tensor, ...]) -> State:
        return tuple(state) if isinstance(state, tuple) else (state,)

    def _check_ids(self, ids: torch.Tensor) -> int:
        if not isinstance(ids, torch.Tensor):
            raise TypeError(
                f"ids must be a torch.Tensor of int64 token ids, got {type(ids).__name__}"
            )
        if ids.dtype != torch.long:
            raise TypeError(f"ids must have dtype torch.int64 (long), got {ids.dtype}")
        if ids.dim() != 2 or ids.shape[0] == 0 or ids.shape[1] == 0:
            raise ValueError(
                f"ids must be a non-empty 2-D (batch, time) tensor, got shape {tuple(ids.shape)}"
            )
        return int(ids.shape[0])

    def _check_state(self, state: State, batch_size: int) -> None:
        kind = "(h, c)" if self.config.cell == "lstm" else "(h,)"
        if not isinstance(state, tuple | list) or len(state) != self.state_size:
            raise TypeError(
                f"state for a {self.config.cell} model must be a tuple {kind} of tensors, "
                f"got {type(state).__name__}"
                + (f" of length {len(state)}" if isinstance(state, tuple | list) else "")
            )
        expected = (self.config.num_layers, batch_size, self.config.hidden_size)
        for tensor in state:
            if not isinstance(tensor, torch.Tensor):
                raise TypeError(f"state must hold tensors, got {type(tensor).__name__}")
            if tuple(tensor.shape) != expected:
                raise ValueError(
                    f"state tensors must have shape (num_layers, batch, hidden_size) = {expected} "
                    f"for ids of batch size {batch_size}, got {tuple(tensor.shape)}"
                )


def detach_state(state: State) -> State:
    """Cut the autograd history of a state (truncated BPTT between consecutive windows)."""
    return tuple(tensor.detach() for tensor in state)


def select_state(state: State, index: torch.Tensor) -> State:
    """Reorder or repeat sequences of a state along the batch dimension.

    Args:
        state: `State` whose tensors are ``(L, B, H)``.
        index: int64 ``(B',)`` batch positions to take (beam search reorders, batched sampling
            repeats one prompt's state).

    Returns:
        A `State` whose tensors are ``(L, B', H)``.

    Example:
        >>> state = (torch.arange(3.0).view(1, 3, 1),)
        >>> select_state(state, torch.tensor([2, 2, 0]))[0].flatten().tolist()
        [2.0, 2.0, 0.0]
    """
    if index.dim() != 1:
        raise ValueError(f"index must be 1-D, got shape {tuple(index.shape)}")
    return tuple(tensor.index_select(1, index.to(tensor.device)) for tensor in state)
