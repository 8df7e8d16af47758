import gzip
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from textgen import data, sources
from textgen.data import (
    RandomWindowBatcher,
    StreamBatcher,
    clamp_batch_size,
    prepare_corpus,
)
from textgen.tokenizers import CharTokenizer, UnknownTokenError, WordTokenizer

TEXT = "".join(f"Line {i}: the quick brown fox, naïve café 😀 jumps.\n" for i in range(60))


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, str):
        text = text.encode("utf-8")
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as handle:
            handle.write(text)
    else:
        path.write_bytes(text)
    return path


@pytest.fixture
def corpus_file(tmp_path: Path) -> Path:
    return write(tmp_path / "corpus.txt", TEXT)


def decode_split(corpus: data.Corpus, split: data.TokenSplit) -> str:
    return corpus.tokenizer.decode(split.ids.tolist())


# ---------------------------------------------------------------- batchers


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
    x, y = next(iter(StreamBatcher(np.arange(50, dtype=np.uint8), 2, 4, device="cpu")))
    assert x.device == y.device == torch.device("cpu")


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


# ---------------------------------------------------------------- prepare_corpus


def test_prepare_splits_from_the_end_and_round_trips(corpus_file: Path, tmp_path: Path) -> None:
    corpus = prepare_corpus(corpus_file, val_fraction=0.1, cache_dir=tmp_path / "cache")
    assert corpus.val is not None
    train, val = decode_split(corpus, corpus.train), decode_split(corpus, corpus.val)
    assert train + val == TEXT
    assert train.endswith("\n")  # split moved to a line start
    assert abs(len(val.encode()) - 0.1 * len(TEXT.encode())) < 200
    assert corpus.train.ids.dtype == np.uint8 and isinstance(corpus.train.ids, np.memmap)
    assert corpus.train.num_tokens == len(corpus.train.ids) == len(train)
    assert corpus.train.num_chars == len(train)
    assert corpus.train.num_bytes == len(train.encode("utf-8"))
    assert corpus.val.num_bytes == len(val.encode("utf-8"))


def test_tokenizer_is_fitted_on_the_train_split_only(tmp_path: Path) -> None:
    path = write(tmp_path / "a.txt", "abab\n" * 40 + "abzz\n" * 4)
    with pytest.raises(UnknownTokenError, match="val split.*training split only.*'z'"):
        prepare_corpus(path, val_fraction=0.1, cache_dir=tmp_path / "c1")
    corpus = prepare_corpus(
        path, tokenizer_options={"unknown": "unk"}, val_fraction=0.1, cache_dir=tmp_path / "c2"
    )
    assert "z" not in corpus.tokenizer.vocab
    assert corpus.val is not None and decode_split(corpus, corpus.val) == "ab<unk><unk>\n" * 4


def test_given_fitted_tokenizer_is_used_as_is(corpus_file: Path, tmp_path: Path) -> None:
    tokenizer = CharTokenizer().fit([TEXT + "XYZ"])
    corpus = prepare_corpus(corpus_file, tokenizer, val_fraction=0, cache_dir=tmp_path)
    assert corpus.val is None
    assert corpus.tokenizer.to_dict() == tokenizer.to_dict()


def test_chunked_encoding_equals_whole_text(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(sources, "READ_SIZE", 37)  # many chunks, cut mid-word and mid-character
    lines = TEXT.splitlines(keepends=True)
    files = [write(tmp_path / f"{i}.txt", "".join(lines[i * 20 : (i + 1) * 20])) for i in range(3)]
    for kind, whole_tokenizer in (("char", CharTokenizer()), ("word", WordTokenizer())):
        corpus = prepare_corpus(
            files, tokenizer_kind=kind, val_fraction=0, cache_dir=tmp_path / kind
        )
        whole = whole_tokenizer.fit([TEXT])
        assert corpus.tokenizer.to_dict() == whole.to_dict()
        assert corpus.train.ids.tolist() == whole.encode(TEXT)


def test_files_without_final_newline_are_separated(tmp_path: Path) -> None:
    files = [write(tmp_path / "a.txt", "end"), write(tmp_path / "b.txt", "start\n")]
    corpus = prepare_corpus(files, tokenizer_kind="word", val_fraction=0, cache_dir=tmp_path)
    assert decode_split(corpus, corpus.train) == "end\nstart\n"


def test_cache_is_reused(
    corpus_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    first = prepare_corpus(corpus_file, cache_dir=cache)
    assert not first.from_cache
    mtime = (first.cache_path / "train.bin").stat().st_mtime_ns

    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("re-encoded although the cache holds the corpus")

    monkeypatch.setattr(data, "_encode_split", fail)
    second = prepare_corpus(corpus_file, cache_dir=cache)
    assert second.from_cache and second.cache_path == first.cache_path
    assert (second.cache_path / "train.bin").stat().st_mtime_ns == mtime
    assert np.array_equal(second.train.ids, first.train.ids)
    assert second.tokenizer.to_dict() == first.tokenizer.to_dict()
    monkeypatch.undo()
    other = prepare_corpus(corpus_file, tokenizer_kind="word", cache_dir=cache)
    assert other.cache_path != first.cache_path  # the tokenizer is part of the key
    write(corpus_file, TEXT + "more\n")
    changed = prepare_corpus(corpus_file, cache_dir=cache)
    assert not changed.from_cache and changed.cache_path != first.cache_path


def test_interrupted_run_leaves_no_cache_entry(
    corpus_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(data, "_encode_split", interrupted)
    with pytest.raises(KeyboardInterrupt):
        prepare_corpus(corpus_file, cache_dir=cache)
    assert list(cache.iterdir()) == []
    monkeypatch.undo()
    assert not prepare_corpus(corpus_file, cache_dir=cache).from_cache


def test_damaged_cache_entry_is_rebuilt(corpus_file: Path, tmp_path: Path) -> None:
    first = prepare_corpus(corpus_file, cache_dir=tmp_path)
    expected = np.array(first.train.ids)
    with (first.cache_path / "train.bin").open("r+b") as handle:
        handle.truncate(10)
    again = prepare_corpus(corpus_file, cache_dir=tmp_path)
    assert not again.from_cache and np.array_equal(again.train.ids, expected)


def test_default_cache_dir_from_environment(
    corpus_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEXTGEN_CACHE", str(tmp_path / "env-cache"))
    corpus = prepare_corpus(corpus_file)
    assert corpus.cache_path.parent == tmp_path / "env-cache"


def test_bad_utf8_names_file_and_offset(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.txt", "héllo".encode() + b"\xff rest\n")
    with pytest.raises(
        ValueError, match=r"bad\.txt: invalid UTF-8 at byte offset 6 .*errors='replace'"
    ):
        prepare_corpus(path, cache_dir=tmp_path)
    corpus = prepare_corpus(path, errors="replace", val_fraction=0, cache_dir=tmp_path)
    assert decode_split(corpus, corpus.train) == "héllo\ufffd rest\n"


def test_bad_utf8_offset_across_read_blocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sources, "READ_SIZE", 4)
    # "é" is split over two blocks; the bad byte sits later, in a gzip file
    path = write(tmp_path / "bad.txt.gz", b"abc" + "é".encode() + b"defgh\xc3(xyz")
    with pytest.raises(
        ValueError, match=r"bad\.txt\.gz: invalid UTF-8 at byte offset 10 of the decompressed"
    ):
        prepare_corpus(path, cache_dir=tmp_path)


def test_folder_recursion_gz_and_bundled_corpus(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    write(folder / "b.txt", "second\n")
    write(folder / "a" / "deep" / "x.txt", "first\n")
    write(folder / "c.txt.gz", "third\n")
    write(folder / "notes.md", "ignored\n")
    corpus = prepare_corpus(folder, val_fraction=0, cache_dir=tmp_path / "cache")
    assert decode_split(corpus, corpus.train) == "first\nsecond\nthird\n"
    bundled = prepare_corpus("shakespeare", cache_dir=tmp_path / "cache")
    assert bundled.val is not None and bundled.train.num_tokens > 800_000
    assert decode_split(bundled, bundled.val)[:100] in decode_split(bundled, bundled.val)


def test_explicit_validation_sources(corpus_file: Path, tmp_path: Path) -> None:
    val_file = write(tmp_path / "val.txt", "the fox\n")
    corpus = prepare_corpus(corpus_file, val_sources=val_file, cache_dir=tmp_path / "c")
    assert decode_split(corpus, corpus.train) == TEXT
    assert corpus.val is not None and decode_split(corpus, corpus.val) == "the fox\n"


def test_split_without_newline_stays_on_a_character_boundary(tmp_path: Path) -> None:
    path = write(tmp_path / "one-line.txt", "é" * 500)
    corpus = prepare_corpus(path, val_fraction=0.25, cache_dir=tmp_path)
    assert corpus.val is not None
    assert corpus.train.num_tokens + corpus.val.num_tokens == 500
    assert corpus.val.num_bytes == 2 * corpus.val.num_tokens


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda p: write(p / "empty.txt", ""), ValueError, "corpus is empty: .*empty.txt"),
        (lambda p: p / "missing.txt", FileNotFoundError, "missing.txt' does not exist"),
        (lambda p: write(p / "d" / "a.md", "x").parent, ValueError, "holds no files matching"),
        (lambda p: write(p / "tiny.txt", "a"), ValueError, "too small to hold out"),
        (lambda p: [], ValueError, "sources is empty"),
    ],
)
def test_bad_sources(tmp_path: Path, make, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        prepare_corpus(make(tmp_path), cache_dir=tmp_path / "cache")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"val_fraction": 1.0}, "val_fraction must be in"),
        ({"errors": "ignore"}, "errors must be 'strict' or 'replace'"),
        ({"tokenizer_kind": "bytes"}, "unknown tokenizer kind 'bytes'"),
    ],
)
def test_bad_arguments(corpus_file: Path, tmp_path: Path, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        prepare_corpus(corpus_file, cache_dir=tmp_path, **kwargs)


def test_corpus_shorter_than_one_window(tmp_path: Path) -> None:
    corpus = prepare_corpus(
        write(tmp_path / "s.txt", "short\n"), val_fraction=0, cache_dir=tmp_path
    )
    with pytest.raises(
        ValueError,
        match="hold 6 tokens, but one batch of batch_size=2 x seq_len=8 needs at least 17",
    ):
        StreamBatcher(corpus.train.ids, batch_size=2, seq_len=8)


def test_no_temporary_files_left(corpus_file: Path, tmp_path: Path) -> None:
    prepare_corpus(corpus_file, cache_dir=tmp_path / "cache")
    names = os.listdir(tmp_path / "cache")
    assert len(names) == 1 and not names[0].startswith(".tmp")


def test_crlf_text_without_spaces_is_cut_safely_for_every_tokenizer():
    from textgen.sources import text_chunks
    from textgen.tokenizers import BPETokenizer, CharTokenizer, WordTokenizer

    text = "".join(f"第{i}行の文章です。\r\n" for i in range(400)) + "end  of\r\n\r\ntext\r\n"
    pieces = [text[i : i + 97] for i in range(0, len(text), 97)]
    chunks = list(text_chunks(pieces, chunk_chars=500))
    assert len(chunks) > 5 and "".join(chunks) == text
    assert all(chunk[-1] not in "\r\n" for chunk in chunks[:-1])  # cut before the line break
    for tokenizer in (CharTokenizer(), WordTokenizer(), BPETokenizer(vocab_size=300)):
        tokenizer.fit([text])
        whole = tokenizer.encode(text)
        assert [i for chunk in chunks for i in tokenizer.encode(chunk)] == whole
