import json
import math
import types

import pytest
import torch

from textgen import runtime
from textgen import trainer as trainer_module
from textgen.checkpoint import load_checkpoint
from textgen.data import prepare_corpus
from textgen.model import LSTMLanguageModel, ModelConfig
from textgen.resume import restore_training_state
from textgen.runtime import bf16_supported
from textgen.trainer import Callback, TrainConfig, Trainer, TrainingDivergedError

TEXT = "the quick brown fox jumps over the lazy dog.\n" * 40


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text(TEXT, encoding="utf-8")
    return prepare_corpus([path], val_fraction=0.2, cache_dir=tmp_path / "cache")


def small_model(corpus, dropout=0.0, seed=0):
    torch.manual_seed(seed)
    return LSTMLanguageModel(
        ModelConfig(
            vocab_size=corpus.tokenizer.vocab_size,
            embed_dim=16,
            hidden_size=32,
            num_layers=2,
            dropout=dropout,
        )
    )


def config(tmp_path, **overrides):
    base = dict(
        out_dir=str(tmp_path / "run"),
        batch_size=4,
        seq_len=16,
        max_steps=30,
        eval_every=10,
        lr=1e-2,
        warmup_steps=2,
        device="cpu",
        progress=False,
        seed=0,
    )
    base.update(overrides)
    return TrainConfig(**base)


def read_metrics(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_loss_falls_and_run_folder_is_complete(tmp_path, corpus):
    model = small_model(corpus)
    trainer = Trainer(
        model, corpus, config(tmp_path, max_steps=150, eval_every=25, lr=2e-2, log_every=1)
    )
    result = trainer.fit()
    run = tmp_path / "run"
    assert {"best.pt", "last.pt", "metrics.jsonl"} <= {p.name for p in run.iterdir()}
    records = read_metrics(run)
    train = [r for r in records if "train_loss" in r]
    val = [r for r in records if "val_loss" in r]
    assert len(train) == 150 and len(val) == 6
    assert train[-1]["train_loss"] < 0.5 * math.log(corpus.tokenizer.vocab_size)
    assert val[-1]["val_loss"] < val[0]["val_loss"]
    for key in (
        "step",
        "epoch",
        "elapsed",
        "train_bpc",
        "lr",
        "grad_norm",
        "clipped",
        "clip_events",
        "tokens_per_s",
    ):
        assert key in train[0]
    assert "val_bpc" in val[0] and "val_perplexity" in val[0]
    assert result.step == 150 and result.stopped_by == "max_steps"
    assert result.best_val_loss == pytest.approx(min(r["val_loss"] for r in val))


def test_evaluate_changes_no_weights(tmp_path, corpus):
    model = small_model(corpus, dropout=0.3)
    trainer = Trainer(model, corpus, config(tmp_path))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    metrics = trainer.evaluate()
    # a fresh model's loss is close to ln(V); one character per token here
    assert metrics["loss"] == pytest.approx(math.log(corpus.tokenizer.vocab_size), abs=0.05)
    assert metrics["bits_per_char"] == pytest.approx(metrics["loss"] / math.log(2))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert torch.equal(rng, torch.get_rng_state())


class StopAt(Callback):
    def __init__(self, step):
        self.step = step

    def on_step_end(self, trainer, metrics):
        if metrics["step"] == self.step:
            trainer.should_stop = True


@pytest.mark.parametrize("batching", ["stream", "random"])
def test_stop_and_resume_is_bitwise_identical(tmp_path, corpus, batching):
    steps = dict(max_steps=24, eval_every=8, batching=batching, grad_accum_steps=2)
    straight = Trainer(small_model(corpus, dropout=0.3), corpus, config(tmp_path / "a", **steps))
    straight.fit()

    first = Trainer(
        small_model(corpus, dropout=0.3),
        corpus,
        config(tmp_path / "b", **steps),
        callbacks=[StopAt(13)],
    )
    assert first.fit().stopped_by == "callback"
    assert load_checkpoint(tmp_path / "b" / "run" / "last.pt").metadata["step"] == 13
    # A fresh process would start from different random weights and RNG states:
    torch.manual_seed(1234)
    resumed = Trainer(
        small_model(corpus, dropout=0.3, seed=99), corpus, config(tmp_path / "b", **steps)
    )
    result = resumed.fit(resume=True)
    assert result.step == 24
    for (name, a), (_, b) in zip(
        straight.model.state_dict().items(), resumed.model.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name


def test_nan_is_rolled_back_and_never_saved(tmp_path, corpus):
    class PoisonOnce(Callback):
        done = False

        def on_step_end(self, trainer, metrics):
            if metrics["step"] == 5 and not self.done:
                self.done = True
                with torch.no_grad():
                    trainer.model.embedding.weight.fill_(float("nan"))

    trainer = Trainer(
        small_model(corpus),
        corpus,
        config(tmp_path, max_steps=12, eval_every=4),
        callbacks=[PoisonOnce()],
    )
    # Step 4 saved the good state; the poisoned weights make step 6 produce NaN -> rollback.
    result = trainer.fit()
    assert result.step == 12
    skipped = [r for r in read_metrics(tmp_path / "run") if r.get("skipped")]
    assert len(skipped) == 1
    assert trainer.scheduler.base_lrs[0] == pytest.approx(0.5 * trainer.config.lr)
    for name in ("best.pt", "last.pt"):
        state = load_checkpoint(tmp_path / "run" / name).model_state
        assert all(torch.isfinite(v).all() for v in state.values())


def test_persistent_nan_stops_with_a_clear_error(tmp_path, corpus):
    class PoisonAlways(Callback):
        def on_step_end(self, trainer, metrics):
            with torch.no_grad():
                trainer.model.embedding.weight.fill_(float("inf"))

    trainer = Trainer(
        small_model(corpus), corpus, config(tmp_path, max_nan_retries=2), callbacks=[PoisonAlways()]
    )
    with pytest.raises(TrainingDivergedError, match="diverged"):
        trainer.fit()


def test_bad_config_and_device_errors(tmp_path, corpus):
    with pytest.raises(ValueError, match="precision"):
        TrainConfig(precision="fp8")
    with pytest.raises(ValueError, match="batch_size"):
        TrainConfig(batch_size=0)
    with pytest.raises(ValueError, match="divisible"):
        TrainConfig(batch_size=5, grad_accum_steps=2)
    with pytest.raises(ValueError, match="fp16"):
        Trainer(small_model(corpus), corpus, config(tmp_path, precision="fp16"))
    missing = f"cuda:{torch.cuda.device_count()}"  # one past the last GPU, or CUDA is absent
    with pytest.raises(ValueError, match=f"device '{missing}' requested but"):
        Trainer(small_model(corpus), corpus, config(tmp_path, device=missing))


@pytest.mark.skipif(
    not bf16_supported(torch.device("cpu")), reason="this CPU has no bfloat16 LSTM kernels"
)
def test_bf16_autocast_on_cpu_trains(tmp_path, corpus):
    trainer = Trainer(small_model(corpus), corpus, config(tmp_path, precision="bf16", max_steps=10))
    result = trainer.fit()
    assert math.isfinite(result.last_metrics["train_loss"])


def test_bf16_on_a_cpu_without_it_is_refused_before_training(tmp_path, corpus, monkeypatch):
    monkeypatch.setattr(runtime, "bf16_supported", lambda device: False)
    with pytest.raises(ValueError, match="bf16' is not supported on this CPU.*use 'fp32'"):
        Trainer(small_model(corpus), corpus, config(tmp_path, precision="bf16"))
    assert not (tmp_path / "run").exists()


def test_resume_without_last_checkpoint_is_an_error(tmp_path, corpus):
    from textgen.checkpoint import CheckpointError

    trainer = Trainer(small_model(corpus), corpus, config(tmp_path))
    with pytest.raises(CheckpointError, match="last.pt"):
        trainer.fit(resume=True)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_fp16_trains_and_checkpoint_loads_on_cpu(tmp_path, corpus):
    trainer = Trainer(
        small_model(corpus), corpus, config(tmp_path, device="cuda", precision="fp16", max_steps=10)
    )
    trainer.fit()
    model = load_checkpoint(tmp_path / "run" / "last.pt").build_model("cpu")
    ids = torch.tensor([corpus.tokenizer.encode("the quick brown fox")])
    with torch.no_grad():
        on_cpu, _ = model(ids)
        on_cuda, _ = trainer.model.eval()(ids.cuda())  # float32 weights, outside autocast
    # the trained weights, on the CPU (cuDNN may compute in TF32: a loose tolerance)
    torch.testing.assert_close(on_cpu, on_cuda.cpu(), atol=1e-2, rtol=1e-2)


def test_gradient_health_warns_when_norms_stay_far_above_the_clip(tmp_path, corpus, caplog):
    trainer = Trainer(
        small_model(corpus), corpus, config(tmp_path, clip_norm=1e-4, max_steps=55, eval_every=100)
    )
    with caplog.at_level("WARNING", logger="textgen.trainer"):
        trainer.fit()
    assert any("exploding" in r.getMessage() for r in caplog.records)
    assert trainer.clip_events == 55


def test_l1_penalty_trains_and_is_not_in_the_reported_loss(tmp_path, corpus):
    def one_step(l1):
        trainer = Trainer(small_model(corpus), corpus, config(tmp_path / str(l1), l1=l1))
        x, y = next(iter(trainer.batcher))
        metrics = trainer.train_step(x, y)
        weights = [p for name, p in trainer.model.named_parameters() if "weight" in name]
        return metrics, sum(float(w.detach().abs().sum()) for w in weights)

    plain, plain_size = one_step(0.0)
    penalised, penalised_size = one_step(1.0)
    # The same weights and batch: the reported loss is the data loss alone (the penalty, about
    # sum |w|, is in the thousands), while the step followed the penalty towards smaller weights.
    assert penalised["train_loss"] == plain["train_loss"]
    assert penalised["grad_norm"] > 10 * plain["grad_norm"]
    assert penalised_size < plain_size


def test_an_existing_run_is_never_replaced_by_accident(tmp_path, corpus):
    Trainer(small_model(corpus), corpus, config(tmp_path, max_steps=2)).fit()
    last = (tmp_path / "run" / "last.pt").read_bytes()
    with pytest.raises(ValueError, match="already holds a run.*resume=True.*overwrite=True"):
        Trainer(small_model(corpus), corpus, config(tmp_path, max_steps=2)).fit()
    assert (tmp_path / "run" / "last.pt").read_bytes() == last
    Trainer(small_model(corpus), corpus, config(tmp_path, max_steps=3, overwrite=True)).fit()
    assert load_checkpoint(tmp_path / "run" / "last.pt").metadata["step"] == 3


def test_overwrite_removes_every_trace_of_the_old_run(tmp_path, corpus):
    Trainer(small_model(corpus), corpus, config(tmp_path, max_steps=20, keep_last=5)).fit()
    run = tmp_path / "run"
    assert (run / "step-00000020.pt").exists()
    no_val = prepare_corpus([tmp_path / "text.txt"], val_fraction=0.0, cache_dir=tmp_path / "c")
    Trainer(small_model(no_val), no_val, config(tmp_path, max_steps=3, overwrite=True)).fit()
    assert not list(run.glob("step-*.pt"))
    assert load_checkpoint(run / "best.pt").metadata["step"] == 3  # no validation: best = last
    assert max(r["step"] for r in read_metrics(run)) == 3


def test_random_windows_with_gradient_accumulation_cross_epochs(tmp_path, corpus):
    steps = Trainer(
        small_model(corpus),
        corpus,
        config(
            tmp_path, batching="random", batch_size=6, grad_accum_steps=3, max_steps=None, epochs=2
        ),
    )
    result = steps.fit()
    assert result.stopped_by == "epochs" and result.epoch == 2


def test_an_early_stopped_run_stays_finished_on_resume(tmp_path, corpus):
    cfg = config(tmp_path, max_steps=200, eval_every=2, early_stopping_patience=1, lr=5.0)
    first = Trainer(small_model(corpus), corpus, cfg).fit()
    assert first.stopped_by == "early_stopping" and first.step < 200
    again = Trainer(small_model(corpus), corpus, cfg).fit(resume=True)
    assert again.step == first.step and again.stopped_by == "early_stopping"


def test_resume_refuses_settings_that_are_fixed_for_a_run(tmp_path, corpus):
    Trainer(small_model(corpus), corpus, config(tmp_path, max_steps=2)).fit()
    with pytest.raises(ValueError, match=r"lr \(was 0.01, now 0.05\)"):
        Trainer(small_model(corpus), corpus, config(tmp_path, max_steps=4, lr=0.05)).fit(
            resume=True
        )


@pytest.mark.slow
def test_a_time_budget_decays_over_the_length_it_plans(tmp_path, corpus, monkeypatch):
    """With a fake clock (10 ms per reading), the planned length ends where time runs out and
    the rate reaches the floor there; a resumed run continues the same plan."""
    readings = iter(range(10**9))
    fake_time = types.SimpleNamespace(perf_counter=lambda: next(readings) * 0.01)
    monkeypatch.setattr(trainer_module, "time", fake_time)
    settings = dict(max_steps=None, max_time=3.0, warmup_steps=5, eval_every=25, log_every=1)
    result = Trainer(small_model(corpus), corpus, config(tmp_path, **settings)).fit()
    assert result.stopped_by == "max_time"
    state = load_checkpoint(tmp_path / "run" / "last.pt").train_state
    planned = state["time_plan"]["planned"]
    assert abs(planned - result.step) <= 2  # planned from the measured speed, validation included
    lrs = [r["lr"] for r in read_metrics(tmp_path / "run") if "lr" in r]
    assert max(lrs) == pytest.approx(1e-2, rel=0.05)  # the warm-up reached the peak
    assert lrs[-1] == pytest.approx(1e-3, rel=0.3)  # and the decay the floor (0.1 x peak)
    resumed = Trainer(
        small_model(corpus), corpus, config(tmp_path, **{**settings, "max_time": 4.0})
    )
    restore_training_state(resumed, load_checkpoint(tmp_path / "run" / "last.pt"))
    assert resumed.time_plan is not None and resumed.time_plan.planned == planned
    assert resumed.scheduler.total_steps == planned


def test_the_run_records_how_it_computes(tmp_path, corpus):
    Trainer(small_model(corpus), corpus, config(tmp_path, max_steps=2, eval_every=2)).fit()
    start = read_metrics(tmp_path / "run")[0]
    assert start == {
        "step": 0,
        "event": "start",
        "device": "cpu",
        "precision": runtime.resolve_precision("auto", torch.device("cpu")),
        "requested_precision": "auto",
        "world_size": 1,
        "global_batch_size": 4,
    }
    assert load_checkpoint(tmp_path / "run" / "last.pt").metadata["precision"] == start["precision"]
