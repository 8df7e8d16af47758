"""Fine-tuning (``--init-from`` / ``plan_run(init_from=...)``): a new run from a trained model,
its vocabulary grown by the new text's symbols, the source never written."""

from __future__ import annotations

import hashlib

import pytest
import torch

from textgen import LSTMLanguageModel, ModelConfig, load_checkpoint
from textgen.cli import main
from textgen.finetune import grow_vocabulary
from textgen.runs import build_trainer, plan_run

BASE_TEXT = "It was the best of times, it was the worst of times.\n" * 40
# New characters (#, @, 7, Q, é) and a new style: what the fine-tuned model must learn.
NEW_TEXT = "".join(
    f"#{i % 7} Qé @user: times were {'best' if i % 2 else 'worst'}\n" for i in range(200)
)
MODEL = {"embed_dim": 8, "hidden_size": 32, "num_layers": 1, "dropout": 0.0}
TRAIN = {"batch_size": 8, "seq_len": 16, "device": "cpu", "progress": False, "eval_every": 20}


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def base(tmp_path):
    """A tiny model trained on BASE_TEXT; returns its run folder."""
    text = tmp_path / "base.txt"
    text.write_text(BASE_TEXT, encoding="utf-8")
    out = tmp_path / "base"
    settings = {
        "data": {"sources": (str(text),)},
        "model": MODEL,
        "train": {**TRAIN, "out_dir": str(out), "max_steps": 10},
    }
    build_trainer(plan_run(settings)).fit()
    return out


def finetune_settings(tmp_path, steps: int, **data):
    text = tmp_path / "new.txt"
    text.write_text(NEW_TEXT, encoding="utf-8")
    return {
        "data": {"sources": (str(text),), "val_fraction": 0.2, **data},
        "train": {**TRAIN, "out_dir": str(tmp_path / "tuned"), "max_steps": steps},
    }


def test_grow_vocabulary_keeps_old_rows_bitwise_and_initialises_new_ones_from_them():
    torch.manual_seed(0)
    model = LSTMLanguageModel(ModelConfig(vocab_size=5, embed_dim=4, hidden_size=8))
    grown = grow_vocabulary(model, 7)
    assert grown.config.vocab_size == 7
    assert torch.equal(grown.embedding.weight[:5], model.embedding.weight)
    assert torch.equal(grown.head.weight[:5], model.head.weight)
    assert torch.equal(grown.embedding.weight[5], model.embedding.weight.mean(0))
    assert torch.equal(grown.head.bias[6], model.head.bias.min())
    for name, tensor in model.state_dict().items():
        if not name.startswith(("embedding", "head")):
            assert torch.equal(grown.state_dict()[name], tensor)
    with pytest.raises(ValueError, match="smaller than the model's 5"):
        grow_vocabulary(model, 4)


def test_finetuning_extends_the_vocabulary_keeps_weights_and_never_writes_the_source(
    base, tmp_path
):
    hashes = {p.name: sha256(p) for p in base.iterdir() if p.is_file()}
    source = load_checkpoint(base)
    plan = plan_run(finetune_settings(tmp_path, 1), init_from=base)
    trainer = build_trainer(plan)
    old, new = source.tokenizer, trainer.tokenizer
    assert new.vocab[: old.vocab_size] == old.vocab  # every learned id keeps its meaning
    assert set(new.vocab[old.vocab_size :]) == set(NEW_TEXT) - set(BASE_TEXT)
    state = trainer.model.state_dict()
    for name, tensor in source.model_state.items():  # step 0: the source's weights, bitwise
        assert torch.equal(state[name][: tensor.shape[0]], tensor), name
    assert trainer.step == 0 and not trainer.optimizer.state  # a fresh optimizer
    trainer.fit()
    assert {p.name: sha256(p) for p in base.iterdir() if p.is_file()} == hashes
    tuned = load_checkpoint(tmp_path / "tuned" / "last.pt")
    assert tuned.tokenizer.vocab == new.vocab and tuned.metadata["step"] == 1


@pytest.mark.slow
def test_finetuning_lowers_held_out_loss_on_the_new_text(base, tmp_path):
    plan = plan_run(finetune_settings(tmp_path, 120), init_from=base)
    trainer = build_trainer(plan)
    before = trainer.evaluate()["loss"]  # the base model, grown, on the held-out new text
    trainer.fit()
    after = trainer.evaluate()["loss"]
    assert after < before - 0.5, (before, after)


def test_a_bpe_model_fine_tunes_with_its_tokenizer_unchanged(tmp_path):
    text = tmp_path / "base.txt"
    text.write_text(BASE_TEXT, encoding="utf-8")
    data = {"sources": (str(text),), "tokenizer": "bpe", "vocab_size": 270}
    train = {**TRAIN, "out_dir": str(tmp_path / "base"), "max_steps": 2}
    build_trainer(plan_run({"data": data, "model": MODEL, "train": train})).fit()
    trainer = build_trainer(plan_run(finetune_settings(tmp_path, 1), init_from=tmp_path / "base"))
    source = load_checkpoint(tmp_path / "base")
    assert trainer.tokenizer.to_dict() == source.tokenizer.to_dict()


def test_unknown_unk_keeps_the_vocabulary_or_says_why_it_cannot(base, tmp_path):
    with pytest.raises(ValueError, match="has no <unk> token"):
        build_trainer(plan_run(finetune_settings(tmp_path, 1, unknown="unk"), init_from=base))


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"model": {"hidden_size": 64}}, "cannot change hidden_size when fine-tuning"),
        ({"data": {"tokenizer": "word"}}, "cannot set tokenizer when fine-tuning"),
        ({"train": {"out_dir": "BASE"}}, "is the folder of the model being fine-tuned"),
    ],
)
def test_what_fine_tuning_refuses(base, tmp_path, change, match):
    settings = finetune_settings(tmp_path, 1)
    for table, values in change.items():
        values = {k: str(base) if v == "BASE" else v for k, v in values.items()}
        settings[table] = {**settings.get(table, {}), **values}
    if "out_dir" in change.get("train", {}):
        settings["train"]["overwrite"] = True  # even then the source is never written
    with pytest.raises(ValueError, match=match):
        plan_run(settings, init_from=base)
    with pytest.raises(ValueError, match="give one of them"):
        plan_run(finetune_settings(tmp_path, 1), init_from=base, resume=True)


def test_train_init_from_on_the_command_line(base, tmp_path, capsys):
    new = tmp_path / "new.txt"
    new.write_text(NEW_TEXT, encoding="utf-8")
    out = tmp_path / "cli"
    argv = ["train", str(new), "--init-from", str(base), "--out", str(out), "--max-steps", "2"]
    assert main([*argv, "--batch-size", "4", "--seq-len", "8", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert f"added {len(set(NEW_TEXT) - set(BASE_TEXT))} new symbol(s) to the vocabulary" in err
    assert load_checkpoint(out).model_config["hidden_size"] == MODEL["hidden_size"]
