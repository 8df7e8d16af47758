"""suffix_array: the order of every suffix, longest matches, and the stored index."""

import numpy as np
import pytest

from textgen import suffix_array as sa_module
from textgen.suffix_array import SuffixArray, build_suffix_array, load_or_build_suffix_array


def naive_suffix_array(ids):
    return sorted(range(len(ids)), key=lambda i: ids[i:].tolist())


@pytest.mark.parametrize("n", [0, 1, 2, 7, 64, 300])
@pytest.mark.parametrize(
    ("vocab", "dtype"),
    [(1, np.uint8), (3, np.uint8), (70, np.uint8), (300, np.uint16), (70000, np.uint32)],
)
def test_equals_sorting_the_suffixes(n, vocab, dtype):
    rng = np.random.default_rng(n + vocab)
    ids = rng.integers(0, vocab, n).astype(dtype)
    if n > 10:
        ids[n // 2 :] = ids[: n - n // 2]  # a long repeat: several doubling rounds
    result = build_suffix_array(ids, vocab)
    assert result.dtype == np.int32
    assert result.tolist() == naive_suffix_array(ids)
    assert build_suffix_array(ids).tolist() == result.tolist()  # vocabulary from the data


def test_longest_match_equals_brute_force():
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 4, 500).astype(np.uint8)
    index = SuffixArray(ids, build_suffix_array(ids))
    text = ids.tolist()
    for _ in range(200):
        query = rng.integers(0, 4, int(rng.integers(1, 12)))
        length, position = index.longest_match(query)
        expected = max(
            (
                k
                for k in range(len(query) + 1)
                for i in range(len(ids))
                if text[i : i + k] == query[:k].tolist()
            ),
        )
        assert length == expected
        assert ids[position : position + length].tolist() == query[:length].tolist()
    assert index.longest_match(np.array([9])) == (0, -1)


def test_stored_once_then_mapped(tmp_path, monkeypatch):
    ids = np.frombuffer(b"abracadabra", dtype=np.uint8)
    path = tmp_path / "entry" / "index.npy"
    first, built = load_or_build_suffix_array(ids, path)
    assert built and path.is_file()
    assert [p.name for p in path.parent.iterdir()] == ["index.npy"]  # no temporary left

    def refuse(*args, **kwargs):
        raise AssertionError("rebuilt an index that was stored")

    monkeypatch.setattr(sa_module, "build_suffix_array", refuse)
    again, built = load_or_build_suffix_array(ids, path)
    assert not built and isinstance(again, np.memmap)
    assert again.tolist() == first.tolist() == naive_suffix_array(ids)


def test_a_stale_or_damaged_file_is_rebuilt(tmp_path):
    ids = np.frombuffer(b"banana", dtype=np.uint8)
    path = tmp_path / "index.npy"
    np.save(path, np.arange(3, dtype=np.int32))  # another text's index
    result, built = load_or_build_suffix_array(ids, path)
    assert built and result.tolist() == naive_suffix_array(ids)
    path.write_bytes(b"not numpy")
    assert load_or_build_suffix_array(ids, path)[1]
    with pytest.raises(ValueError, match=r"suffix_array has shape \(2,\), expected \(6,\)"):
        SuffixArray(ids, np.arange(2))
