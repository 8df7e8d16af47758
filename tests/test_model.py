import dataclasses

import pytest
import torch

from textgen.model import (
    LSTMLanguageModel,
    ModelConfig,
    detach_state,
    select_state,
)

VOCAB = 20


def tiny(**options) -> ModelConfig:
    defaults = dict(vocab_size=VOCAB, embed_dim=8, hidden_size=16, num_layers=2, dropout=0.1)
    defaults.update(options)
    return ModelConfig(**defaults)


VARIANTS = {
    "lstm": {},
    "gru": {"cell": "gru"},
    "locked": {"locked_dropout": True, "embed_dropout": 0.1},
    "residual": {"residual": True, "num_layers": 3},
    "gru-residual-locked": {"cell": "gru", "residual": True, "locked_dropout": True},
    "tied-projection": {"tie_weights": True},
    "tied-same-size": {"tie_weights": True, "embed_dim": 16},
    "one-layer": {"num_layers": 1},
}


def ids(batch_size: int = 3, seq_len: int = 7, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, VOCAB, (batch_size, seq_len), generator=generator)


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("vocab_size", 0, ValueError),
        ("embed_dim", -1, ValueError),
        ("hidden_size", 2.5, TypeError),
        ("hidden_size", True, TypeError),
        ("num_layers", 0, ValueError),
        ("dropout", 1.0, ValueError),
        ("embed_dropout", -0.1, ValueError),
        ("cell", "rnn", ValueError),
        ("tie_weights", "yes", TypeError),
    ],
)
def test_config_errors_name_the_field(field, value, error):
    """Wrong types raise TypeError, wrong values ValueError; both name the field and the value."""
    with pytest.raises(error, match=rf"{field}.*{value!r}"):
        tiny(**{field: value})


def test_config_rejects_residual_with_one_layer():
    with pytest.raises(ValueError, match="residual"):
        tiny(residual=True, num_layers=1)


def test_config_is_frozen_and_round_trips_through_asdict():
    config = tiny(cell="gru", tie_weights=True)
    assert ModelConfig(**dataclasses.asdict(config)) == config
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.hidden_size = 3  # type: ignore[misc]


@pytest.mark.parametrize("variant", VARIANTS)
def test_shapes_and_dtypes(variant):
    torch.manual_seed(0)
    model = LSTMLanguageModel(tiny(**VARIANTS[variant]))
    config = model.config
    logits, state = model(ids(3, 7))
    assert logits.shape == (3, 7, VOCAB) and logits.dtype == torch.float32
    assert len(state) == (2 if config.cell == "lstm" else 1)
    for tensor in state:
        assert tensor.shape == (config.num_layers, 3, config.hidden_size)
    zeros = model.init_state(5)
    assert all(t.shape == (config.num_layers, 5, config.hidden_size) for t in zeros)
    assert all(t.dtype == torch.float32 and not t.any() for t in zeros)


@pytest.mark.parametrize("variant", VARIANTS)
def test_stepwise_equals_full_sequence_cpu(variant):
    _check_stepwise(tiny(**VARIANTS[variant]), torch.device("cpu"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("variant", ["lstm", "gru", "residual", "tied-projection"])
def test_stepwise_equals_full_sequence_cuda(variant):
    _check_stepwise(tiny(**VARIANTS[variant]), torch.device("cuda"))


def _check_stepwise(config: ModelConfig, device: torch.device) -> None:
    torch.manual_seed(0)
    model = LSTMLanguageModel(config).to(device).eval()
    tokens = ids(2, 9).to(device)
    with torch.no_grad():
        full, full_state = model(tokens)
        state = None
        steps = []
        for t in range(tokens.shape[1]):
            logits, state = model(tokens[:, t : t + 1], state)
            steps.append(logits)
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=1e-5)
    assert state is not None
    for a, b in zip(state, full_state, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_state_is_carried():
    torch.manual_seed(0)
    model = LSTMLanguageModel(tiny()).eval()
    tokens = ids(2, 6)
    with torch.no_grad():
        _, state = model(tokens[:, :3])
        carried, _ = model(tokens[:, 3:], state)
        fresh, _ = model(tokens[:, 3:])
        full, _ = model(tokens)
    torch.testing.assert_close(carried, full[:, 3:])
    assert not torch.allclose(carried, fresh)


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_parameter_gets_a_finite_gradient(variant):
    torch.manual_seed(0)
    model = LSTMLanguageModel(tiny(**VARIANTS[variant])).train()
    logits, state = model(ids(4, 6))
    (logits.square().mean() + sum(s.sum() for s in state)).backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, name


def test_overfits_a_short_text():
    torch.manual_seed(0)
    text = "the quick brown fox jumps over the lazy dog. "
    vocab = sorted(set(text))
    data = torch.tensor([[vocab.index(ch) for ch in text]])
    config = ModelConfig(
        vocab_size=len(vocab), embed_dim=16, hidden_size=32, num_layers=2, dropout=0.0
    )
    model = LSTMLanguageModel(config)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-2)
    x, y = data[:, :-1], data[:, 1:]
    for _ in range(300):
        logits, _ = model(x)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, len(vocab)), y.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if loss.item() < 0.05:
            break
    assert loss.item() < 0.05  # well below 0.1 nats, typically after ~120 steps


def test_initialisation_keeps_pytorchs_recurrent_init():
    # PyTorch's uniform [-1/sqrt(H), 1/sqrt(H)] for every recurrent weight and bias (a forget
    # bias of 1 generalised worse, see the model's docstring); embedding and head as in
    # word_language_model.
    for config in (tiny(), tiny(locked_dropout=True), tiny(cell="gru")):
        torch.manual_seed(0)
        model = LSTMLanguageModel(config)
        bound = 1 / config.hidden_size**0.5
        for layer in model.layers:
            for name, param in layer.named_parameters():
                assert param.abs().max() <= bound, name
                assert param.std() > bound / 3, name  # spread over the range, not zeros or ones
        assert model.embedding.weight.abs().max() <= 0.1
        assert not model.head.bias.any()


def test_fused_stack_only_when_no_per_layer_feature():
    assert len(LSTMLanguageModel(tiny(num_layers=3)).layers) == 1
    assert len(LSTMLanguageModel(tiny(num_layers=3, locked_dropout=True)).layers) == 3
    assert len(LSTMLanguageModel(tiny(num_layers=3, residual=True)).layers) == 3


def test_tied_weights_share_the_tensor_and_count_once():
    model = LSTMLanguageModel(tiny(tie_weights=True))
    assert model.head.weight is model.embedding.weight
    assert model.projection is not None
    assert model.projection.weight.shape == (8, 16)
    untied = LSTMLanguageModel(tiny(tie_weights=False))
    # Tying drops the head's own V x H matrix and adds the H x E projection (no bias); counting
    # the shared matrix twice would add V x E back.
    assert untied.num_parameters() - model.num_parameters() == VOCAB * 16 - 16 * 8
    same_size = LSTMLanguageModel(tiny(tie_weights=True, embed_dim=16))
    assert same_size.projection is None


def test_num_parameters_matches_formula():
    config = tiny(num_layers=1, dropout=0.0)
    model = LSTMLanguageModel(config)
    e, h, v = config.embed_dim, config.hidden_size, config.vocab_size
    expected = v * e + 4 * h * (e + h) + 8 * h + h * v + v
    assert model.num_parameters() == expected
    model.embedding.weight.requires_grad_(False)
    assert model.num_parameters(trainable_only=True) == expected - v * e


def test_eval_is_deterministic_and_train_uses_dropout():
    torch.manual_seed(0)
    model = LSTMLanguageModel(tiny(dropout=0.5, embed_dropout=0.5, locked_dropout=True))
    tokens = ids()
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(tokens)[0], model(tokens)[0])
        model.train()
        assert not torch.allclose(model(tokens)[0], model(tokens)[0])


def test_whole_word_embedding_dropout_drops_every_occurrence():
    torch.manual_seed(0)
    model = LSTMLanguageModel(tiny(embed_dropout=0.5)).train()
    tokens = torch.arange(VOCAB).repeat(4, 2)  # every token 8 times
    rows = model._embed(tokens)
    dropped = (rows == 0).all(dim=-1)
    fate = dropped[0, :VOCAB]
    assert 0 < fate.sum() < VOCAB  # some tokens dropped, some kept
    assert torch.equal(dropped, fate.repeat(4, 2))  # one token, one fate, wherever it occurs
    kept = model.embedding.weight[tokens] / 0.5  # kept rows are scaled by 1 / (1 - p)
    torch.testing.assert_close(rows, torch.where(dropped[..., None], 0.0, kept))


def test_locked_dropout_mask_is_shared_over_time():
    torch.manual_seed(0)
    model = LSTMLanguageModel(tiny(dropout=0.5, locked_dropout=True)).train()
    dropped = model._drop(torch.ones(2, 6, 16))
    assert torch.equal(dropped, dropped[:, :1].expand_as(dropped))
    assert (dropped == 0).any()


def test_forward_accepts_matching_state_and_rejects_wrong_shape():
    model = LSTMLanguageModel(tiny())
    logits, _ = model(ids(3, 4), model.init_state(3))
    assert logits.shape == (3, 4, VOCAB)
    with pytest.raises(ValueError, match=r"\(2, 3, 16\).*\(2, 5, 16\)"):
        model(ids(3, 4), model.init_state(5))
    with pytest.raises(TypeError, match=r"\(h, c\)"):
        model(ids(3, 4), model.init_state(3)[:1])


def test_forward_rejects_bad_ids():
    model = LSTMLanguageModel(tiny())
    with pytest.raises(TypeError, match="int64"):
        model(ids().float())
    with pytest.raises(TypeError, match="int64"):
        model(ids().int())
    with pytest.raises(ValueError, match=r"2-D.*\(7,\)"):
        model(ids()[0])
    with pytest.raises(ValueError, match="2-D"):
        model(torch.zeros(2, 0, dtype=torch.long))
    with pytest.raises(ValueError, match="batch_size"):
        model.init_state(0)


def test_init_state_follows_device_and_dtype():
    model = LSTMLanguageModel(tiny(cell="gru")).double()
    logits, _ = model(ids(2, 3))
    assert logits.dtype == torch.float64
    (h,) = model.to("meta").init_state(2)  # a device other than the default one, even on a CPU
    assert h.dtype == torch.float64 and h.device.type == "meta"


def test_detach_and_select_state():
    model = LSTMLanguageModel(tiny())
    _, state = model(ids(3, 4))
    assert all(t.requires_grad for t in state)
    detached = detach_state(state)
    assert all(not t.requires_grad for t in detached)
    torch.testing.assert_close(detached[0], state[0].detach())
    index = torch.tensor([2, 0, 0, 1])
    selected = select_state(state, index)
    assert all(t.shape == (2, 4, 16) for t in selected)
    torch.testing.assert_close(selected[1][:, 1], state[1][:, 0])
    torch.testing.assert_close(selected[0][:, 0], state[0][:, 2])
    with pytest.raises(ValueError, match="1-D"):
        select_state(state, index.view(2, 2))


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_split_fused_stack_computes_the_fused_module(cell, monkeypatch):
    # Training on the CPU with dropout between layers runs the fused module one layer at a
    # time (textgen.dropout draws the masks). With dropout made the identity the result must
    # equal the fused module's own forward (a copy of the model with dropout 0), gradients too.
    monkeypatch.setattr("textgen.model.dropout", lambda x, p, training=True, mask_shape=None: x)
    torch.manual_seed(0)
    split = LSTMLanguageModel(tiny(cell=cell, num_layers=3, dropout=0.3)).train()
    whole = LSTMLanguageModel(tiny(cell=cell, num_layers=3, dropout=0.0)).train()
    whole.load_state_dict(split.state_dict())
    assert split._split_fused_stack(torch.zeros(1, 1, 8))
    assert not whole._split_fused_stack(torch.zeros(1, 1, 8))
    tokens = ids(3, 7)
    state = tuple(torch.randn_like(s) for s in split.init_state(3))
    outputs = []
    for model in (split, whole):
        logits, new_state = model(tokens, state)
        (logits.square().mean() + sum(s.sum() for s in new_state)).backward()
        grads = {name: p.grad for name, p in model.named_parameters()}
        outputs.append((logits, new_state, grads))
    torch.testing.assert_close(outputs[0][0], outputs[1][0])
    torch.testing.assert_close(outputs[0][1], outputs[1][1])
    torch.testing.assert_close(outputs[0][2], outputs[1][2])


def test_split_fused_stack_drops_between_layers_reproducibly():
    model = LSTMLanguageModel(tiny(num_layers=2, dropout=0.5)).train()
    tokens = ids(2, 6)
    torch.manual_seed(1)
    first = model(tokens)[0]
    torch.manual_seed(1)
    torch.testing.assert_close(model(tokens)[0], first)
    assert not torch.allclose(model(tokens)[0], first)
