"""StreamBatcher, RandomWindowBatcher and clamp_batch_size: shapes, shift, layout, cursor."""

from pathlib import Path

import numpy as np
import pytest
import torch

from _text_files import write
from textgen.data import RandomWindowBatcher, StreamBatcher, clamp_batch_size, prepare_corpus


def test_stream_batches_shapes_dtype_and_shift() -> None:
    ids = np.arange(1000, dtype=np.uint16)
    batcher = StreamBatcher(ids, batch_size=4, seq_len=8)
    x, y = next(iter(batcher))
    assert x.shape == y.shape == (4, 8)
    assert x.dtype == y.dtype == torch.int64
    assert torch.equal(x[:, 1:], y[:, :-1])
    assert torch.equal(y - x, torch.ones_like(x))  # ids are consecutive, so y == x + 1


def test_stream_batches_continue_each_stream() -> None:
    ids = np.arange(1001, dtype=np.uint16)
    batcher = StreamBatcher(ids, batch_size=4, seq_len=10)
    assert batcher.stream_len == 250 and batcher.batches_per_epoch == len(batcher) == 25
    batches = list(batcher.iter_epoch())
    assert len(batches) == 25 and batcher.epoch == 1 and batcher.batch == 0
    rows = torch.cat([x for x, _ in batches], dim=1)  # (B, 250): each stream, in order
    assert torch.equal(rows, torch.arange(1000).view(4, 250))
    assert torch.equal(batches[1][0][:, 0], batches[0][1][:, -1])  # next x starts at last y


def test_stream_iteration_crosses_epochs() -> None:
    batcher = StreamBatcher(np.arange(41, dtype=np.uint8), batch_size=2, seq_len=10)
    iterator = iter(batcher)
    first = [next(iterator)[0] for _ in range(2)]
    again = next(iterator)[0]
    assert batcher.epoch == 1 and batcher.batch == 1
    assert torch.equal(again, first[0])


@pytest.mark.parametrize("kind", ["stream", "random"])
def test_cursor_resumes_at_the_same_batch(kind: str) -> None:
    ids = np.random.default_rng(0).integers(0, 50, size=500).astype(np.uint8)

    def make() -> StreamBatcher | RandomWindowBatcher:
        if kind == "stream":
            return StreamBatcher(ids, batch_size=3, seq_len=7)
        return RandomWindowBatcher(ids, batch_size=3, seq_len=7, seed=5)

    reference = make()
    iterator = iter(reference)
    for _ in range(30):  # crosses an epoch boundary (23 batches per epoch)
        next(iterator)
    state = reference.state_dict()
    assert all(type(v) is int for v in state.values())
    expected = [next(iterator) for _ in range(5)]
    resumed = make()
    resumed.load_state_dict(state)
    resumed_iterator = iter(resumed)
    for x, y in expected:
        rx, ry = next(resumed_iterator)
        assert torch.equal(rx, x) and torch.equal(ry, y)


def test_load_state_dict_rejects_other_sizes() -> None:
    ids = np.arange(200, dtype=np.uint8)
    state = StreamBatcher(ids, batch_size=2, seq_len=5).state_dict()
    with pytest.raises(ValueError, match="saved with seq_len=5, but this batcher has seq_len=6"):
        StreamBatcher(ids, batch_size=2, seq_len=6).load_state_dict(state)
    with pytest.raises(ValueError, match="lacks batch"):
        StreamBatcher(ids, batch_size=2, seq_len=5).load_state_dict({"epoch": 0})


def test_random_windows_each_once_per_epoch_and_seeded() -> None:
    ids = np.arange(1003, dtype=np.uint16)
    batcher = RandomWindowBatcher(ids, batch_size=8, seq_len=10, seed=1)
    assert batcher.num_windows == 100 and batcher.batches_per_epoch == 13
    epoch0 = list(batcher.iter_epoch())
    assert [x.shape[0] for x, _ in epoch0] == [8] * 12 + [4]
    starts = torch.cat([x[:, 0] for x, _ in epoch0]).tolist()
    assert sorted(starts) == list(range(0, 1000, 10))  # every window exactly once
    for x, y in epoch0:
        assert torch.equal(y, x + 1)
    epoch1 = torch.cat([x[:, 0] for x, _ in batcher.iter_epoch()]).tolist()
    assert sorted(epoch1) == sorted(starts) and epoch1 != starts  # reshuffled each epoch
    same = RandomWindowBatcher(ids, batch_size=8, seq_len=10, seed=1)
    assert torch.equal(next(iter(same))[0], epoch0[0][0])
    dropped = RandomWindowBatcher(ids, batch_size=8, seq_len=10, seed=1, drop_last=True)
    assert len(dropped) == 12


def test_device_argument_moves_batches() -> None:
    ids = np.arange(50, dtype=np.uint8)
    # "meta" is a device other than the default one on every machine, a CPU-only one included.
    for batcher in (
        StreamBatcher(ids, 2, 4, device="meta"),
        RandomWindowBatcher(ids, 2, 4, seed=0, device=torch.device("meta")),
    ):
        x, y = next(iter(batcher))
        assert x.device.type == y.device.type == "meta"
        assert x.shape == y.shape == (2, 4) and x.dtype == y.dtype == torch.int64


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"batch_size": 0, "seq_len": 4}, "batch_size must be an integer >= 1, got 0"),
        ({"batch_size": 2, "seq_len": 0}, "seq_len must be an integer >= 1, got 0"),
        ({"batch_size": 4, "seq_len": 8}, "hold 20 tokens, but one batch .* needs at least 33"),
    ],
)
def test_batcher_bad_sizes(kwargs: dict[str, int], match: str) -> None:
    ids = np.arange(20, dtype=np.uint8)
    with pytest.raises(ValueError, match=match):
        StreamBatcher(ids, **kwargs)
    with pytest.raises(ValueError, match=match):
        RandomWindowBatcher(ids, **kwargs, seed=0)


def test_empty_ids_and_clamp_batch_size() -> None:
    with pytest.raises(ValueError, match="empty"):
        StreamBatcher(np.zeros(0, dtype=np.uint8), 1, 1)
    assert clamp_batch_size(num_tokens=20, batch_size=4, seq_len=8) == 2
    assert clamp_batch_size(num_tokens=2000, batch_size=4, seq_len=8) == 4
    with pytest.raises(ValueError, match="needs at least 9"):
        clamp_batch_size(num_tokens=8, batch_size=4, seq_len=8)


def test_corpus_shorter_than_one_window(tmp_path: Path) -> None:
    corpus = prepare_corpus(
        write(tmp_path / "s.txt", "short\n"), val_fraction=0, cache_dir=tmp_path
    )
    with pytest.raises(
        ValueError,
        match="hold 6 tokens, but one batch of batch_size=2 x seq_len=8 needs at least 17",
    ):
        StreamBatcher(corpus.train.ids, batch_size=2, seq_len=8)


# ---------------------------------------------------------------- the layout evaluation reads


def test_partial_window_is_kept_on_request() -> None:
    ids = np.arange(100, dtype=np.uint8)  # 2 streams of 49 tokens: 12 windows of 4, then 1
    full = StreamBatcher(ids, batch_size=2, seq_len=4)
    partial = StreamBatcher(ids, batch_size=2, seq_len=4, keep_partial_window=True)
    assert len(full) == 12 and len(partial) == 13
    for index in range(12):  # the same windows, then one more
        for a, b in zip(full.get_batch(index), partial.get_batch(index), strict=True):
            assert torch.equal(a, b)
    x, y = partial.get_batch(12)
    assert x.tolist() == [[48], [97]] and y.tolist() == [[49], [98]]
    rows = torch.cat([x for x, _ in partial.iter_epoch()], dim=1)
    assert torch.equal(rows, torch.arange(98).view(2, 49))  # every token of each stream, once


def test_partial_window_needs_one_token_per_stream() -> None:
    ids = np.arange(3, dtype=np.uint8)
    batcher = StreamBatcher(ids, batch_size=2, seq_len=8, keep_partial_window=True)
    assert [x.tolist() for x, _ in batcher.iter_epoch()] == [[[0], [1]]]
    with pytest.raises(ValueError, match="hold 3 tokens, but 3 streams need at least 4"):
        StreamBatcher(ids, batch_size=3, seq_len=8, keep_partial_window=True)


@pytest.mark.parametrize(
    ("num_tokens", "batch_size", "seq_len", "streams", "widths"),
    [
        (1001, 4, 10, 4, [10] * 25),
        (20, 4, 8, 2, [8, 1]),  # room for two full windows only: two streams
        (6, 4, 8, 1, [5]),  # shorter than one window: one stream, one narrow batch
        (2, 16, 256, 1, [1]),
    ],
)
def test_for_evaluation_clamps_the_streams_and_scores_nearly_every_token(
    num_tokens: int, batch_size: int, seq_len: int, streams: int, widths: list[int]
) -> None:
    ids = np.arange(num_tokens, dtype=np.uint16)
    batcher = StreamBatcher.for_evaluation(ids, batch_size, seq_len)
    assert batcher.batch_size == streams and batcher.keep_partial_window
    batches = list(batcher.iter_epoch())
    assert [x.shape for x, _ in batches] == [(streams, width) for width in widths]
    scored = sum(y.numel() for _, y in batches)
    assert num_tokens - 1 - streams < scored <= num_tokens - 1
    for x, y in batches:
        assert torch.equal(y, x + 1)


def test_for_evaluation_needs_two_tokens() -> None:
    with pytest.raises(ValueError, match="only 1 token"):
        StreamBatcher.for_evaluation(np.arange(1), batch_size=4, seq_len=8)
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1, got 0"):
        StreamBatcher.for_evaluation(np.arange(10), batch_size=0, seq_len=8)


@pytest.mark.parametrize(
    ("make", "parameter"),
    [
        (lambda ids: StreamBatcher(ids, 2.0, 4), "batch_size"),
        (lambda ids: StreamBatcher(ids, True, 4), "batch_size"),
        (lambda ids: StreamBatcher(ids, 2, "4"), "seq_len"),
        (lambda ids: StreamBatcher(list(ids), 2, 4), "ids"),
        (lambda ids: StreamBatcher(ids.astype(np.float32), 2, 4), "ids"),
        (lambda ids: StreamBatcher(ids, 2, 4, keep_partial_window=1), "keep_partial_window"),
        (lambda ids: RandomWindowBatcher(ids, 2, 4, seed="1"), "seed"),
        (lambda ids: RandomWindowBatcher(ids, 2, 4, seed=0, drop_last=None), "drop_last"),
        (lambda ids: StreamBatcher.for_evaluation(ids, 2, 4.5), "seq_len"),
        (lambda ids: clamp_batch_size(50.0, 2, 4), "num_tokens"),
    ],
)
def test_batchers_reject_wrong_types_naming_the_parameter(make, parameter: str) -> None:
    with pytest.raises(TypeError, match=parameter) as caught:
        make(np.arange(50, dtype=np.uint8))
    assert caught.value.parameter == parameter
