"""Callbacks: hooks in order, state owned by the callback and carried across a resume."""

from __future__ import annotations

import pytest
import torch

from textgen import Callback, EarlyStopping, SampleCallback
from textgen.data import prepare_corpus
from textgen.model import LSTMLanguageModel, ModelConfig
from textgen.trainer import TrainConfig, Trainer

TEXT = "abcde fghij klmno pqrst\n" * 60


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text(TEXT, encoding="utf-8")
    return prepare_corpus([path], val_fraction=0.2, cache_dir=tmp_path / "cache")


def trainer(tmp_path, corpus, callbacks=(), **overrides):
    torch.manual_seed(0)
    model = LSTMLanguageModel(
        ModelConfig(vocab_size=corpus.tokenizer.vocab_size, embed_dim=8, hidden_size=16)
    )
    settings = dict(
        out_dir=str(tmp_path / "run"),
        batch_size=4,
        seq_len=8,
        max_steps=12,
        eval_every=4,
        device="cpu",
        progress=False,
        seed=0,
    )
    settings.update(overrides)
    return Trainer(model, corpus, TrainConfig(**settings), callbacks=callbacks)


class Recorder(Callback):
    """Records the hooks it sees and counts steps; its count is state that must survive."""

    def __init__(self, stop_at: int | None = None):
        self.events: list[str] = []
        self.steps = 0
        self.stop_at = stop_at

    def on_train_begin(self, trainer):
        self.events.append("begin")

    def on_step_end(self, trainer, metrics):
        self.steps += 1
        if self.stop_at is not None and metrics["step"] == self.stop_at:
            trainer.request_stop("recorder")

    def on_evaluate_end(self, trainer, metrics):
        self.events.append(f"evaluate@{metrics['step']}")

    def on_checkpoint_saved(self, trainer, path):
        self.events.append(path.name)

    def on_train_end(self, trainer, result):
        self.events.append(f"end:{result.stopped_by}")

    def state_dict(self):
        return {"steps": self.steps}

    def load_state_dict(self, state):
        self.steps = state["steps"]


def test_hooks_run_in_order(tmp_path, corpus):
    recorder = Recorder()
    trainer(tmp_path, corpus, [recorder], max_steps=8).fit()
    assert recorder.events[0] == "begin" and recorder.events[-1] == "end:max_steps"
    assert recorder.events.index("evaluate@4") < recorder.events.index("evaluate@8")
    assert "last.pt" in recorder.events and "best.pt" in recorder.events


def test_a_requested_stop_names_its_reason_and_callback_state_survives_a_resume(tmp_path, corpus):
    first = Recorder(stop_at=6)
    result = trainer(tmp_path, corpus, [first]).fit()
    assert result.stopped_by == "recorder" and result.step == 6 and first.steps == 6
    second = Recorder()
    result = trainer(tmp_path, corpus, [second]).fit(resume=True)
    assert result.step == 12
    assert second.steps == 12  # 6 restored from last.pt + 6 taken now


def test_state_is_keyed_by_state_key_not_by_type(tmp_path, corpus):
    class Named(Recorder):
        def __init__(self, key, stop_at=None):
            super().__init__(stop_at)
            self.key = key

        @property
        def state_key(self):
            return self.key

    a, b = Named("a", stop_at=4), Named("b")
    b.steps = 100  # distinct states: were both saved under one key, one would overwrite the other
    trainer(tmp_path, corpus, [a, b]).fit()
    a2, b2 = Named("a"), Named("b")
    trainer(tmp_path, corpus, [a2, b2]).fit(resume=True)
    assert (a2.steps, b2.steps) == (4 + 8, 104 + 8)


def test_an_early_stopped_run_stays_stopped_through_its_own_state(tmp_path, corpus):
    stopper = EarlyStopping(patience=1)
    stopper.best = -1.0  # no validation can improve on this: the first one stops the run
    result = trainer(tmp_path, corpus, [stopper], max_steps=40).fit()
    assert result.stopped_by == "early_stopping" and result.step == 4
    again = trainer(tmp_path, corpus, [EarlyStopping(patience=1)], max_steps=40).fit(resume=True)
    assert again.stopped_by == "early_stopping" and again.step == 4
    longer = trainer(tmp_path, corpus, [EarlyStopping(patience=5)], max_steps=8).fit(resume=True)
    assert longer.step == 8  # a larger patience lets the run go on


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="patience"):
        EarlyStopping(0)
    with pytest.raises(ValueError, match="every"):
        SampleCallback(0)
    with pytest.raises(TypeError, match="every"):
        SampleCallback(1.5)  # type: ignore[arg-type]
