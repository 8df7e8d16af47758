"""Fine-tuning: a new run that starts from a trained model instead of random weights.

`textgen.runs` uses this module for ``textgen train DATA --init-from SOURCE`` (library:
``plan_run(settings, init_from=SOURCE)``). The source (a checkpoint file, a run folder or a
bundled pretrained model name) gives the model's shape, its weights and its tokenizer; the
optimizer, the schedule, the data cursor and the run folder are new. The source is only read.

Text with symbols the source's tokenizer lacks (a character, or a word, it never saw) grows the
vocabulary at its end (`Tokenizer.extend`), so every id the model learned keeps its meaning; the
model gets one new embedding row and one new output row per symbol (`grow_vocabulary`). A
byte-level BPE tokenizer has nothing unknown and is used as it is.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

import torch

from textgen.checkpoint import Checkpoint, CheckpointError
from textgen.model import LSTMLanguageModel, ModelConfig
from textgen.tokenizers import END_OF_TEXT, Tokenizer, tokenizer_from_dict
from textgen.validation import InvalidValueError

#: Model settings a fine-tuning run may change: regularisation only, never a weight's shape.
CHANGEABLE_MODEL_SETTINGS = ("dropout", "embed_dropout", "locked_dropout")


def check_model_changes(given: Mapping[str, Any], saved: Mapping[str, Any]) -> dict[str, Any]:
    """The model settings of a fine-tuning run: the source's, with the changes it allows.

    Raises:
        InvalidValueError: a setting that shapes the weights differs from the source's.
    """
    changed = [k for k, v in given.items() if saved.get(k) != v and k != "vocab_size"]
    fixed = [k for k in changed if k not in CHANGEABLE_MODEL_SETTINGS]
    if fixed:
        raise InvalidValueError(
            tuple(fixed),
            f"cannot change {', '.join(fixed)} when fine-tuning: the model's shape is the "
            f"source's (only {', '.join(CHANGEABLE_MODEL_SETTINGS)} may change); train a new "
            "model to change it",
        )
    return {**saved, **{k: given[k] for k in changed}}


def extended_tokenizer(
    tokenizer: Tokenizer, texts: Iterable[str], *, documents: bool, keep_vocabulary: bool
) -> tuple[Tokenizer, list[str]]:
    """A copy of ``tokenizer`` grown by the symbols of ``texts`` it lacks (and end-of-text
    when training on documents); the source's tokenizer object is left as it is.

    Args:
        tokenizer: the source model's tokenizer.
        texts: the new training (and validation) text, in chunks.
        documents: the new run puts end-of-text between documents.
        keep_vocabulary: map unknown symbols to ``<unk>`` instead of adding them.

    Returns:
        The tokenizer to train with and the symbols added (in id order).

    Raises:
        InvalidValueError: ``keep_vocabulary`` and the tokenizer has no ``<unk>`` token.
    """
    grown = tokenizer_from_dict(tokenizer.to_dict())
    if keep_vocabulary:
        if grown.unk_id is None:
            raise InvalidValueError(
                "unknown",
                f"unknown='unk' keeps the source's vocabulary, but its {grown.kind} tokenizer "
                "has no <unk> token; leave unknown unset to add the new symbols instead",
            )
        grown.unknown = "unk"  # type: ignore[attr-defined]  # char and word have this policy
        new: list[str] = []
    else:
        new = grown.new_symbols(texts)
    if documents and grown.eos_id is None:
        new.append(END_OF_TEXT)  # a model saved before end-of-text existed
    added = grown.extend(new)
    return grown, added


def grow_vocabulary(model: LSTMLanguageModel, vocab_size: int) -> LSTMLanguageModel:
    """A new model equal to ``model`` whose vocabulary has ``vocab_size`` ids.

    Existing weights are copied bitwise. Each new embedding row is the mean of the old rows (a
    typical input, not noise); each new output row is the mean of the old ones and its bias is
    the lowest old bias, so a new symbol starts about as likely as the rarest known one and the
    model's predictions on familiar text barely move before training.

    Raises:
        ValueError: ``vocab_size`` is smaller than the model's.
    """
    old = model.config.vocab_size
    if vocab_size < old:
        raise ValueError(f"vocab_size {vocab_size} is smaller than the model's {old}")
    config = dataclasses.replace(model.config, vocab_size=vocab_size)
    grown = LSTMLanguageModel(config).to(next(model.parameters()).device)
    state = model.state_dict()
    extra = vocab_size - old

    def rows(tensor: torch.Tensor, fill: torch.Tensor) -> torch.Tensor:
        return torch.cat([tensor, fill.expand(extra, *tensor.shape[1:])])

    state = {**state}
    state["embedding.weight"] = rows(state["embedding.weight"], state["embedding.weight"].mean(0))
    if not config.tie_weights:
        state["head.weight"] = rows(state["head.weight"], state["head.weight"].mean(0))
    else:
        state["head.weight"] = state["embedding.weight"]
    state["head.bias"] = rows(state["head.bias"], state["head.bias"].min())
    grown.load_state_dict(state)
    return grown


def finetune_model(
    checkpoint: Checkpoint, tokenizer: Tokenizer, **changes: Any
) -> LSTMLanguageModel:
    """The source's model in float32, grown to ``tokenizer``'s vocabulary, with ``changes``
    (`CHANGEABLE_MODEL_SETTINGS`) applied.

    Raises:
        CheckpointError: the source's weights do not fit its own config.
        InvalidValueError: a change would reshape the weights.
    """
    settings = check_model_changes(changes, checkpoint.model_config)
    try:
        model = LSTMLanguageModel(ModelConfig(**settings))
        # a pretrained model may be stored in bfloat16: copy_ casts it to float32
        model.load_state_dict(checkpoint.model_state)
    except (TypeError, ValueError, RuntimeError) as error:
        raise CheckpointError(f"{checkpoint.path}: cannot rebuild the model: {error}") from None
    if tokenizer.vocab_size > model.config.vocab_size:
        model = grow_vocabulary(model, tokenizer.vocab_size)
    return model


__all__ = [
    "CHANGEABLE_MODEL_SETTINGS",
    "check_model_changes",
    "extended_tokenizer",
    "finetune_model",
    "grow_vocabulary",
]
