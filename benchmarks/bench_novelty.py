"""Benchmark the novelty index: suffix array build time and peak memory, and query speed.

Run by hand from the repository root (not part of the tests):

    PYTHONPATH=src python benchmarks/bench_novelty.py [--sizes-mb 1 100] [--query-chars 2000]

Each size runs in its own process (so its peak memory is its own). Size "bundled" is the
bundled Shakespeare corpus encoded with the char tokenizer (about 1.1 M tokens); a size in MB is
a synthetic corpus of that many one-byte tokens, made of the bundled corpus's lines drawn at
random with replacement (every line repeats, as in real crawled text, but long passages do not).
Reported: build seconds, peak resident memory of the process (MiB), peak NumPy allocations
during the build (MiB, tracemalloc), bytes per token, and the time to report on a random
``--query-chars`` sample.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import time
import tracemalloc

import numpy as np

from textgen.data import load_corpus
from textgen.suffix_array import SuffixArray, build_suffix_array
from textgen.tokenizers import CharTokenizer


def corpus_ids(size: str) -> np.ndarray:
    text = load_corpus("shakespeare")
    tokenizer = CharTokenizer().fit([text])
    ids = np.asarray(tokenizer.encode(text), dtype=np.uint8)
    if size == "bundled":
        return ids
    target = int(float(size) * 1_000_000)
    newline = tokenizer.encode("\n")[0]
    ends = np.flatnonzero(ids == newline) + 1
    starts = np.concatenate([[0], ends[:-1]])
    rng = np.random.default_rng(0)
    lines = rng.integers(0, len(starts), 2 * target // int(np.mean(ends - starts)) + 10)
    pieces, total = [], 0
    for line in lines:
        piece = ids[starts[line] : ends[line]]
        pieces.append(piece)
        total += len(piece)
        if total >= target:
            break
    return np.concatenate(pieces)[:target]


def run_one(size: str, query_chars: int, results: multiprocessing.Queue) -> None:
    ids = corpus_ids(size)
    tracemalloc.start()
    start = time.perf_counter()
    suffix_array = build_suffix_array(ids, int(ids.max()) + 1)
    build_s = time.perf_counter() - start
    _, numpy_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    maxrss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    index = SuffixArray(ids, suffix_array)
    rng = np.random.default_rng(1)
    sample_start = int(rng.integers(0, len(ids) - query_chars))
    query = ids[sample_start : sample_start + query_chars].astype(np.int64)
    query[::50] = rng.integers(0, int(ids.max()) + 1, len(query[::50]))  # breaks every 50
    start = time.perf_counter()
    for i in range(len(query)):
        index.longest_match(query[i:])
    query_s = time.perf_counter() - start
    results.put((size, len(ids), build_s, maxrss_mib, numpy_peak / 2**20, query_s))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes-mb", nargs="+", default=["bundled", "100"])
    parser.add_argument("--query-chars", type=int, default=2000)
    args = parser.parse_args()
    context = multiprocessing.get_context("spawn")
    print(
        f"{'corpus':>8} {'tokens':>12} {'build s':>8} {'max RSS MiB':>12} "
        f"{'numpy peak MiB':>15} {'B/token':>8} {'query s':>8}"
    )
    for size in args.sizes_mb:
        results = context.Queue()
        process = context.Process(target=run_one, args=(size, args.query_chars, results))
        process.start()
        name, tokens, build_s, rss, peak, query_s = results.get()
        process.join()
        print(
            f"{name:>8} {tokens:>12,} {build_s:>8.2f} {rss:>12.0f} {peak:>15.0f} "
            f"{peak * 2**20 / tokens:>8.1f} {query_s:>8.2f}"
        )


if __name__ == "__main__":
    main()
