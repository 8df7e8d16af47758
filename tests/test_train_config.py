"""TrainConfig: every field validated at construction, documented, and the run-length and
resume policies the Python API and the command line share."""

from __future__ import annotations

import dataclasses

import pytest

from textgen.options import describe
from textgen.train_config import DEFAULT_MAX_TIME, FIXED_ON_RESUME, TrainConfig, resume_config


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("optimizer", "adam2", ValueError),
        ("schedule", "exponential", ValueError),
        ("device", "gpu", ValueError),
        ("device", 0, TypeError),
        ("max_steps", True, TypeError),
        ("max_steps", -1, ValueError),
        ("batch_size", 0, ValueError),
        ("batch_size", 2.0, TypeError),
        ("lr", 0.0, ValueError),
        ("lr", float("nan"), ValueError),
        ("lr", "1e-3", TypeError),
        ("precision", "fp8", ValueError),
        ("batching", "shuffled", ValueError),
        ("momentum", 1.0, ValueError),
        ("clip_norm", -1.0, ValueError),
        ("clip_value", 0.0, ValueError),
        ("max_time", 0, ValueError),
        ("nan_lr_factor", 1.0, ValueError),
        ("plateau_factor", 0.0, ValueError),
        ("gamma", 1.5, ValueError),
        ("min_lr_ratio", 2.0, ValueError),
        ("warmup_steps", -1, ValueError),
        ("keep_last", -1, ValueError),
        ("max_nan_retries", -1, ValueError),
        ("sample_every", -1, ValueError),
        ("seed", -1, ValueError),
        ("progress", "yes", TypeError),
        ("out_dir", "", ValueError),
    ],
)
def test_every_field_is_checked_when_the_config_is_built(field, value, error):
    with pytest.raises(error) as caught:
        TrainConfig(**{field: value})
    assert caught.value.parameter == field
    assert field in str(caught.value)


def test_cross_field_rules():
    with pytest.raises(ValueError, match="divisible"):
        TrainConfig(batch_size=5, grad_accum_steps=2)
    with pytest.raises(ValueError, match="nesterov"):
        TrainConfig(optimizer="adamw", nesterov=True)
    with pytest.raises(ValueError, match="'cosine' decays over the run's length.*no limit"):
        TrainConfig(schedule="cosine", max_steps=0)
    assert TrainConfig(schedule="linear", max_time=60).plans_from_time


def test_every_field_has_help_and_a_group():
    for info in describe(TrainConfig):
        assert info.help, f"{info.name} has no help text"
        assert info.group, f"{info.name} has no group"


def test_run_length_policy():
    default = TrainConfig()  # no limit given: a time budget, the schedule planned over it
    assert default.step_limit is None and default.time_limit == DEFAULT_MAX_TIME
    assert default.plans_from_time and default.limit_reached(10**6, 0, 0.0) is None
    assert default.limit_reached(5, 0, DEFAULT_MAX_TIME) == "max_time"
    assert TrainConfig(max_steps=7).step_limit == 7
    assert TrainConfig(max_steps=7).time_limit is None  # any limit given replaces the default
    assert TrainConfig(epochs=1).time_limit is None
    assert TrainConfig(max_time=60).time_limit == 60
    assert TrainConfig(max_time=60).step_limit is None  # a time budget alone means what it says
    assert TrainConfig(epochs=2).step_limit is None
    assert TrainConfig(epochs=2, max_steps=9).step_limit == 9
    assert TrainConfig(max_steps=0).step_limit is None  # no step limit: Ctrl-C ends the run
    assert TrainConfig(max_steps=0).time_limit is None


def test_auto_schedule_decays_over_a_known_or_time_planned_length():
    assert TrainConfig().resolved_schedule() == "cosine"
    assert TrainConfig().plans_from_time  # the default time budget
    assert not TrainConfig(max_steps=100).plans_from_time
    assert TrainConfig(max_time=60).resolved_schedule() == "cosine"
    assert TrainConfig(max_time=60).plans_from_time  # its length comes from the measured speed
    assert TrainConfig(max_time=60, max_steps=10).plans_from_time  # whichever comes first
    assert TrainConfig(max_steps=0).resolved_schedule() == "constant"  # no limit at all
    assert TrainConfig(schedule="plateau", max_time=60).resolved_schedule() == "plateau"
    assert not TrainConfig(schedule="plateau", max_time=60).plans_from_time


def test_resume_keeps_saved_settings_applies_changes_and_refuses_fixed_ones():
    saved = dataclasses.asdict(TrainConfig(max_steps=100, lr=1e-3, eval_every=10))
    resumed = resume_config(saved, {"max_steps": 200, "eval_every": 5})
    assert (resumed.max_steps, resumed.eval_every, resumed.lr) == (200, 5, 1e-3)
    with pytest.raises(ValueError, match=r"lr \(was 0.001, now 0.01\)"):
        resume_config(saved, {"lr": 1e-2})
    assert resume_config(saved, {"lr": 1e-3}).lr == 1e-3  # giving the same value is fine
    assert "lr" in FIXED_ON_RESUME and "max_steps" not in FIXED_ON_RESUME


def test_a_new_time_budget_on_resume_lifts_the_saved_step_cap():
    saved = dataclasses.asdict(TrainConfig(max_steps=100))
    assert resume_config(saved, {"max_time": 30.0}).step_limit is None
    assert resume_config(saved, {"max_time": 30.0, "max_steps": 500}).step_limit == 500


def test_from_dict_refuses_unknown_keys_with_a_suggestion():
    with pytest.raises(
        ValueError,
        match=r"run.toml \[train\]: unknown TrainConfig setting 'batch_sise'; did you mean 'batch_size'",
    ):
        TrainConfig.from_dict({"batch_sise": 8}, source="run.toml [train]")
