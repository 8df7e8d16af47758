import io
import os
import zipfile

import pytest
import torch

from textgen.checkpoint import (
    CHECKPOINT_FORMAT_VERSION,
    CheckpointError,
    load_checkpoint,
    save_checkpoint,
)
from textgen.model import LSTMLanguageModel, ModelConfig
from textgen.tokenizers import CharTokenizer

TEXT = "to be or not to be, that is the question\n"


@pytest.fixture
def model_and_tokenizer():
    torch.manual_seed(0)
    tokenizer = CharTokenizer().fit([TEXT])
    model = LSTMLanguageModel(
        ModelConfig(vocab_size=tokenizer.vocab_size, embed_dim=8, hidden_size=16, num_layers=2)
    )
    return model, tokenizer


def test_round_trip_gives_identical_logits_and_tokenizer(tmp_path, model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    path = save_checkpoint(
        tmp_path / "m.pt", model=model, tokenizer=tokenizer, metadata={"step": 3}
    )
    checkpoint = load_checkpoint(path)
    restored = checkpoint.build_model()
    ids = torch.tensor([tokenizer.encode("to be or")])
    model.eval()
    assert torch.equal(model(ids)[0], restored(ids)[0])
    assert checkpoint.tokenizer.to_dict() == tokenizer.to_dict()
    assert checkpoint.metadata["step"] == 3
    assert checkpoint.train_state is None


def test_run_folder_means_best_then_last(tmp_path, model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    save_checkpoint(tmp_path / "last.pt", model=model, tokenizer=tokenizer)
    assert load_checkpoint(tmp_path).path == tmp_path / "last.pt"
    save_checkpoint(tmp_path / "best.pt", model=model, tokenizer=tokenizer)
    assert load_checkpoint(tmp_path).path == tmp_path / "best.pt"
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CheckpointError, match="holds no best.pt or last.pt"):
        load_checkpoint(empty)


def test_malicious_pickle_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.pt"
    torch.save({"format": "textgen-checkpoint", "payload": Exploit()}, path)
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(path)
    assert not marker.exists()


def test_truncated_foreign_and_missing_files(tmp_path, model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    good = save_checkpoint(tmp_path / "good.pt", model=model, tokenizer=tokenizer)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="truncated.pt"):
        load_checkpoint(truncated)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    with pytest.raises(CheckpointError, match="not a textgen checkpoint"):
        load_checkpoint(foreign)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(CheckpointError, match="notes.txt"):
        load_checkpoint(text)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")


def test_other_version_and_missing_keys_name_the_problem(tmp_path, model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    path = save_checkpoint(tmp_path / "m.pt", model=model, tokenizer=tokenizer)
    payload = torch.load(path, weights_only=True)
    payload["format_version"] = CHECKPOINT_FORMAT_VERSION + 1
    torch.save(payload, tmp_path / "future.pt")
    with pytest.raises(CheckpointError, match="future.pt.*version"):
        load_checkpoint(tmp_path / "future.pt")
    payload["format_version"] = CHECKPOINT_FORMAT_VERSION
    del payload["model_state"]
    torch.save(payload, tmp_path / "partial.pt")
    with pytest.raises(CheckpointError, match="partial.pt.*model_state"):
        load_checkpoint(tmp_path / "partial.pt")


def test_non_finite_weights_are_never_saved_and_old_file_survives(tmp_path, model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    path = save_checkpoint(tmp_path / "last.pt", model=model, tokenizer=tokenizer)
    before = path.read_bytes()
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))
    with pytest.raises(CheckpointError, match="non-finite"):
        save_checkpoint(path, model=model, tokenizer=tokenizer)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left behind


@pytest.mark.parametrize(
    "device",
    [
        "cpu",
        # on a CPU-only machine every tensor is on the CPU anyway: the move is checked on CUDA
        pytest.param(
            "cuda",
            marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
        ),
    ],
)
def test_checkpoint_is_a_plain_torch_zip_with_cpu_tensors(tmp_path, model_and_tokenizer, device):
    model, tokenizer = model_and_tokenizer
    path = save_checkpoint(
        tmp_path / "m.pt",
        model=model.to(device),
        tokenizer=tokenizer,
        train_state={"hidden": (torch.zeros(2, 1, 16, device=device),), "step": 1},
    )
    assert zipfile.is_zipfile(path)
    payload = torch.load(io.BytesIO(path.read_bytes()), weights_only=True)
    assert all(t.device.type == "cpu" for t in payload["model_state"].values())
    assert payload["train_state"]["hidden"][0].device.type == "cpu"
    assert payload["train_state"]["step"] == 1


def test_checkpoint_gets_the_usual_file_mode(tmp_path, model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    old = os.umask(0o022)
    try:
        path = save_checkpoint(tmp_path / "m.pt", model=model, tokenizer=tokenizer)
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644


def test_round_trip_gives_identical_seeded_samples(tmp_path, model_and_tokenizer):
    from textgen.sampler import Sampler

    model, tokenizer = model_and_tokenizer
    checkpoint = load_checkpoint(
        save_checkpoint(tmp_path / "m.pt", model=model, tokenizer=tokenizer)
    )
    before = Sampler(model, tokenizer).generate("to be", max_new_tokens=30, seed=5, top_k=10)
    after = Sampler(checkpoint.build_model(), checkpoint.tokenizer).generate(
        "to be", max_new_tokens=30, seed=5, top_k=10
    )
    assert before[0].token_ids == after[0].token_ids


def test_a_text_file_is_not_a_checkpoint_in_one_short_sentence(tmp_path):
    path = tmp_path / "notes.pt"
    path.write_text("hello, I am not a checkpoint\n")
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(path)
    assert str(error.value) == f"{path} is not a checkpoint (not a torch file, or truncated)"
