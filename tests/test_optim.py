import io
import math

import pytest
import torch
from torch import nn

from textgen.model import LSTMLanguageModel, ModelConfig
from textgen.optim import (
    ClipResult,
    build_optimizer,
    clip_gradients,
    l1_penalty,
)
from textgen.schedules import TimePlan, build_scheduler


def tiny_model(**options) -> LSTMLanguageModel:
    torch.manual_seed(0)
    config = dict(vocab_size=12, embed_dim=8, hidden_size=16, num_layers=2, dropout=0.0)
    config.update(options)
    return LSTMLanguageModel(ModelConfig(**config))


def names_in(model: nn.Module, params) -> set[str]:
    by_id = {id(p): name for name, p in model.named_parameters()}
    return {by_id[id(p)] for p in params}


def groups_by_name(optimizer) -> dict:
    return {group["name"]: group for group in optimizer.param_groups}


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw", "rmsprop", "SGD"])
def test_builds_from_name_and_steps(name):
    model = tiny_model()
    optimizer = build_optimizer(model, name, 0.01, weight_decay=0.1)
    before = model.head.weight.detach().clone()
    logits, _ = model(torch.randint(0, 12, (2, 5)))
    logits.sum().backward()
    optimizer.step()
    assert not torch.equal(before, model.head.weight)


def test_optimizer_classes_and_options():
    model = tiny_model()
    sgd = build_optimizer(model, "sgd", 0.1, momentum=0.9, nesterov=True)
    assert isinstance(sgd, torch.optim.SGD)
    assert sgd.defaults["nesterov"] and sgd.defaults["momentum"] == 0.9
    adam = build_optimizer(model, "adam", 1e-3, betas=(0.8, 0.9), eps=1e-6)
    assert isinstance(adam, torch.optim.Adam) and adam.defaults["betas"] == (0.8, 0.9)
    assert isinstance(build_optimizer(model, "adamw", 1e-3), torch.optim.AdamW)
    assert isinstance(build_optimizer(model, "rmsprop", 1e-3, momentum=0.5), torch.optim.RMSprop)


def test_weight_decay_groups_contain_the_right_parameters():
    model = tiny_model()
    groups = groups_by_name(build_optimizer(model, "adamw", 1e-3, weight_decay=0.1))
    assert groups["decay"]["weight_decay"] == 0.1
    assert groups["no_decay"]["weight_decay"] == 0.0
    assert names_in(model, groups["decay"]["params"]) == {
        "layers.0.weight_ih_l0",
        "layers.0.weight_hh_l0",
        "layers.0.weight_ih_l1",
        "layers.0.weight_hh_l1",
        "head.weight",
    }
    assert names_in(model, groups["no_decay"]["params"]) == {
        "embedding.weight",
        "layers.0.bias_ih_l0",
        "layers.0.bias_hh_l0",
        "layers.0.bias_ih_l1",
        "layers.0.bias_hh_l1",
        "head.bias",
    }


def test_tied_weight_appears_once_and_follows_decay_embeddings():
    model = tiny_model(tie_weights=True)
    for decay_embeddings in (False, True):
        optimizer = build_optimizer(
            model, "sgd", 0.1, weight_decay=0.1, decay_embeddings=decay_embeddings
        )
        all_params = [p for group in optimizer.param_groups for p in group["params"]]
        assert len(all_params) == len({id(p) for p in all_params}) == len(list(model.parameters()))
        decay = names_in(model, groups_by_name(optimizer)["decay"]["params"])
        assert ("embedding.weight" in decay) is decay_embeddings
        assert "projection.weight" in decay


def test_frozen_parameters_are_left_out():
    model = tiny_model()
    model.embedding.weight.requires_grad_(False)
    optimizer = build_optimizer(model, "adam", 1e-3)
    all_params = [p for group in optimizer.param_groups for p in group["params"]]
    assert all(p is not model.embedding.weight for p in all_params)


def test_empty_group_is_dropped():
    optimizer = build_optimizer(nn.Linear(3, 2, bias=False), "sgd", 0.1)
    assert [group["name"] for group in optimizer.param_groups] == ["decay"]


def test_adamw_decay_is_decoupled():
    # With zero gradient Adam(L2) moves a weight by about lr (normalised step); AdamW by lr*wd*w.
    weight = nn.Linear(1, 1, bias=False)
    nn.init.constant_(weight.weight, 2.0)
    optimizer = build_optimizer(weight, "adamw", 0.1, weight_decay=0.5)
    weight.weight.grad = torch.zeros_like(weight.weight)
    optimizer.step()
    assert weight.weight.item() == pytest.approx(2.0 * (1 - 0.1 * 0.5))


@pytest.mark.parametrize(
    ("name", "lr", "options", "message"),
    [
        (
            "lbfgs",
            0.1,
            {},
            r"optimizer must be one of 'sgd', 'adam', 'adamw', 'rmsprop', got 'lbfgs'",
        ),
        ("sgd", -0.1, {}, "lr must be a number > 0"),
        ("sgd", 0.0, {}, "lr must be a number > 0"),
        ("sgd", math.nan, {}, "lr"),
        ("sgd", 0.1, {"weight_decay": -1.0}, "weight_decay"),
        ("sgd", 0.1, {"momentum": 1.0}, "momentum"),
        ("adam", 0.1, {"momentum": 0.9}, "momentum"),
        ("sgd", 0.1, {"nesterov": True}, "nesterov"),
        ("adam", 0.1, {"betas": (0.9, 1.0)}, "betas"),
        ("adam", 0.1, {"eps": 0.0}, "eps"),
    ],
)
def test_optimizer_errors(name, lr, options, message):
    with pytest.raises(ValueError, match=message):
        build_optimizer(tiny_model(), name, lr, **options)


def test_l1_penalty_covers_weights_only():
    model = tiny_model()
    expected = sum(
        p.abs().sum()
        for name, p in model.named_parameters()
        if "weight" in name and "embedding" not in name
    )
    penalty = l1_penalty(model, 0.01)
    torch.testing.assert_close(penalty, 0.01 * expected)
    penalty.backward()
    assert model.embedding.weight.grad is None and model.head.bias.grad is None
    torch.testing.assert_close(model.head.weight.grad, 0.01 * model.head.weight.sign())
    assert l1_penalty(model, 0.0).item() == 0.0
    with pytest.raises(ValueError, match="coefficient"):
        l1_penalty(model, -1.0)


def with_grads(*grads: list[float]) -> list[nn.Parameter]:
    params = []
    for values in grads:
        param = nn.Parameter(torch.zeros(len(values)))
        param.grad = torch.tensor(values)
        params.append(param)
    return params


def total_norm(params) -> float:
    return math.sqrt(sum(float(p.grad.square().sum()) for p in params))


def test_clip_by_norm_caps_the_global_norm_exactly():
    params = with_grads([3.0, 0.0], [0.0, 4.0])  # norm 5
    result = clip_gradients(params, max_norm=1.0)
    assert result == ClipResult(norm=pytest.approx(5.0), clipped=True)
    assert total_norm(params) == pytest.approx(1.0, rel=1e-6)
    torch.testing.assert_close(params[0].grad, torch.tensor([0.6, 0.0]))


def test_clip_by_norm_leaves_small_gradients_alone():
    params = with_grads([0.3], [0.4])
    result = clip_gradients(params, max_norm=1.0)
    assert result.norm == pytest.approx(0.5) and not result.clipped
    torch.testing.assert_close(params[1].grad, torch.tensor([0.4]))


def test_clip_by_value_caps_each_element():
    params = with_grads([3.0, -0.5], [-4.0, 0.2])
    result = clip_gradients(params, max_value=1.0)
    assert result.norm == pytest.approx(math.sqrt(9 + 0.25 + 16 + 0.04)) and result.clipped
    torch.testing.assert_close(params[0].grad, torch.tensor([1.0, -0.5]))
    torch.testing.assert_close(params[1].grad, torch.tensor([-1.0, 0.2]))


def test_clip_by_value_then_norm():
    params = with_grads([3.0, 0.0], [0.0, -4.0])
    result = clip_gradients(params, max_norm=1.0, max_value=2.0)
    assert result.norm == pytest.approx(5.0) and result.clipped
    assert total_norm(params) == pytest.approx(1.0, rel=1e-6)
    torch.testing.assert_close(params[0].grad, params[1].grad.abs().flip(0))


def test_measure_only_and_no_grads():
    params = with_grads([3.0, 4.0])
    assert clip_gradients(params) == ClipResult(norm=pytest.approx(5.0), clipped=False)
    torch.testing.assert_close(params[0].grad, torch.tensor([3.0, 4.0]))
    assert clip_gradients([nn.Parameter(torch.zeros(2))], max_norm=1.0) == ClipResult(0.0, False)
    assert clip_gradients(params[0]).norm == pytest.approx(5.0)


def test_non_finite_norm_is_reported_not_applied():
    params = with_grads([math.inf, 1.0])
    result = clip_gradients(params, max_norm=1.0)
    assert math.isinf(result.norm) and not result.clipped
    assert params[0].grad[1].item() == 1.0


def test_clip_on_a_model():
    model = tiny_model()
    logits, _ = model(torch.randint(0, 12, (2, 5)))
    (logits.sum() * 100).backward()
    result = clip_gradients(model.parameters(), max_norm=0.5)
    assert result.clipped and result.norm > 0.5
    assert total_norm(list(model.parameters())) == pytest.approx(0.5, rel=1e-5)


@pytest.mark.parametrize("options", [{"max_norm": 0.0}, {"max_norm": -1.0}, {"max_value": 0}])
def test_clip_rejects_non_positive_limits(options):
    with pytest.raises(ValueError, match=next(iter(options))):
        clip_gradients(with_grads([1.0]), **options)


def lrs_over(scheduler, steps: int) -> list[float]:
    values = []
    for _ in range(steps):
        values.append(scheduler.lr)
        scheduler.step()
    return values


def sgd(lr: float = 1.0) -> torch.optim.Optimizer:
    return build_optimizer(nn.Linear(2, 2), "sgd", lr)


def test_constant_with_warmup():
    scheduler = build_scheduler(sgd(), "constant", warmup_steps=3)
    assert lrs_over(scheduler, 6) == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0, 1.0])


def test_cosine_with_warmup_and_floor():
    optimizer = sgd(2.0)
    scheduler = build_scheduler(
        optimizer, "cosine", warmup_steps=2, total_steps=6, min_lr_ratio=0.1
    )
    values = lrs_over(scheduler, 9)
    floor = 0.2
    cosine = [floor + (2.0 - floor) * 0.5 * (1 + math.cos(math.pi * k / 4)) for k in range(5)]
    assert values == pytest.approx([2 / 3, 4 / 3, *cosine, floor, floor])
    assert values[4] == pytest.approx(1.1)  # halfway: midway between 2.0 and the floor
    assert scheduler.get_last_lr() == pytest.approx([floor, floor])  # both param groups


def test_step_decay():
    scheduler = build_scheduler(sgd(), "step", step_size=2, gamma=0.5, min_lr_ratio=0.2)
    assert lrs_over(scheduler, 7) == pytest.approx([1, 1, 0.5, 0.5, 0.25, 0.25, 0.2])


def test_plateau_divides_by_four_like_word_language_model():
    scheduler = build_scheduler(sgd(20.0), "plateau")
    assert not scheduler.on_validation(5.0)
    assert not scheduler.on_validation(4.0)
    assert scheduler.on_validation(4.5)
    assert scheduler.lr == pytest.approx(5.0)
    scheduler.step()
    assert scheduler.lr == pytest.approx(5.0)
    assert scheduler.on_validation(float("nan"))
    assert scheduler.lr == pytest.approx(1.25)


def test_plateau_patience_and_floor():
    scheduler = build_scheduler(sgd(), "plateau", patience=1, factor=0.5, min_lr_ratio=0.3)
    scheduler.on_validation(1.0)
    assert not scheduler.on_validation(1.0)  # first bad validation is tolerated
    assert scheduler.on_validation(1.0)
    assert scheduler.lr == pytest.approx(0.5)
    scheduler.on_validation(2.0)
    assert scheduler.on_validation(2.0)
    assert scheduler.lr == pytest.approx(0.3)
    scheduler.on_validation(2.0)
    assert not scheduler.on_validation(2.0)  # already at the floor
    assert scheduler.lr == pytest.approx(0.3)


def test_other_schedules_ignore_validation():
    scheduler = build_scheduler(sgd(), "constant")
    for loss in (1.0, 2.0, 3.0):
        assert not scheduler.on_validation(loss)
    assert scheduler.lr == 1.0


def test_scheduler_state_dict_round_trip_through_safe_torch_load():
    def make():
        optimizer = sgd(1.0)
        return build_scheduler(optimizer, "plateau", warmup_steps=2, factor=0.5)

    scheduler = make()
    lrs_over(scheduler, 3)
    scheduler.on_validation(1.0)
    scheduler.on_validation(2.0)
    buffer = io.BytesIO()
    torch.save(scheduler.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    restored = make()
    assert restored.lr != scheduler.lr
    restored.load_state_dict(state)
    assert restored.state_dict() == scheduler.state_dict()
    assert restored.lr == scheduler.lr == 0.5
    assert lrs_over(restored, 3) == lrs_over(scheduler, 3)
    assert restored.on_validation(3.0) == scheduler.on_validation(3.0)
    with pytest.raises(ValueError, match="'cosine'"):
        build_scheduler(sgd(), "cosine", total_steps=5).load_state_dict(state)


def test_scheduler_survives_optimizer_reload():
    optimizer = sgd(1.0)
    scheduler = build_scheduler(optimizer, "step", step_size=1, gamma=0.5)
    lrs_over(scheduler, 2)
    saved_optimizer, saved_scheduler = optimizer.state_dict(), scheduler.state_dict()
    fresh_optimizer = sgd(1.0)
    fresh_optimizer.load_state_dict(saved_optimizer)
    fresh = build_scheduler(fresh_optimizer, "step", step_size=1, gamma=0.5)
    fresh.load_state_dict(saved_scheduler)
    assert fresh.base_lrs == [1.0, 1.0] and fresh.lr == pytest.approx(0.25)


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        (
            "exponential",
            {},
            r"schedule must be one of 'constant', 'cosine', 'linear', 'step', 'plateau', got",
        ),
        ("cosine", {"warmup_steps": 5, "total_steps": 5}, "total_steps"),
        ("step", {}, "step_size"),
        ("step", {"step_size": 0}, "step_size"),
        ("constant", {"warmup_steps": -1}, "warmup_steps"),
        ("constant", {"min_lr_ratio": 1.5}, "min_lr_ratio"),
        ("step", {"step_size": 2, "gamma": 0.0}, "gamma"),
        ("plateau", {"factor": 1.0}, "factor"),
        ("plateau", {"patience": -1}, "patience"),
    ],
)
def test_scheduler_errors(name, options, message):
    with pytest.raises(ValueError, match=message):
        build_scheduler(sgd(), name, **options)


def test_scale_base_lr_persists_through_the_schedule_and_state_dict():
    scheduler = build_scheduler(sgd(2.0), "constant", warmup_steps=1)
    scheduler.step()
    assert scheduler.lr == pytest.approx(2.0)
    scheduler.scale_base_lr(0.5)
    assert scheduler.lr == pytest.approx(1.0)
    scheduler.step()
    assert scheduler.lr == pytest.approx(1.0)
    restored = build_scheduler(sgd(2.0), "constant", warmup_steps=1)
    restored.load_state_dict(scheduler.state_dict())
    assert restored.lr == pytest.approx(1.0)
    with pytest.raises(ValueError, match="factor"):
        scheduler.scale_base_lr(0.0)


def test_a_decaying_schedule_without_a_length_holds_its_peak_until_given_one():
    optimizer = build_optimizer(nn.Linear(2, 2), "sgd", 1.0)
    scheduler = build_scheduler(optimizer, "cosine", warmup_steps=2, min_lr_ratio=0.0)
    rates = []
    for _ in range(4):
        rates.append(scheduler.lr)
        scheduler.step()
    assert rates == pytest.approx([1 / 3, 2 / 3, 1.0, 1.0])  # warm-up, then the peak
    scheduler.set_total_steps(6)  # planned now: steps 4 and 5 decay from the peak to 0
    assert scheduler.lr == pytest.approx(0.5 * (1 + math.cos(math.pi * 2 / 4)))


def test_linear_decay_is_a_straight_line_to_the_floor():
    optimizer = build_optimizer(nn.Linear(2, 2), "sgd", 1.0)
    scheduler = build_scheduler(
        optimizer, "linear", warmup_steps=0, total_steps=4, min_lr_ratio=0.2
    )
    rates = []
    for _ in range(6):
        rates.append(scheduler.lr)
        scheduler.step()
    assert rates == pytest.approx([1.0, 0.8, 0.6, 0.4, 0.2, 0.2])


def test_a_time_plan_measures_speed_and_plans_the_remaining_steps():
    plan = TimePlan(100.0, None, measure_from=2, plan_at=6)
    assert [plan.observe(step, step * 0.5) for step in range(1, 6)] == [None] * 5
    assert plan.observe(6, 3.0) == 6 + 194  # 0.5 s per step, 97 s left
    assert plan.observe(7, 3.5) is None  # planned once; later plans come at validations
    # validation took 10 s: the rate measured since step 2 now includes it
    assert plan.replan(20, 20.0) == 20 + round(80 / (19 / 18))
    capped = TimePlan(100.0, 50, measure_from=1, plan_at=2)
    assert (capped.observe(1, 0.1), capped.observe(2, 0.2)) == (None, 50)  # a step cap wins
    restored = TimePlan(100.0, None)
    restored.load_state_dict(plan.state_dict())
    assert (restored.mark, restored.planned) == (plan.mark, plan.planned)
