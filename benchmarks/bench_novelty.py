"""Benchmark the novelty index: suffix array build time and peak memory, and query speed.

Run by hand from the repository root (not part of the tests):

    PYTHONPATH=src python benchmarks/bench_novelty.py [--sizes-mb bundled 100] [--query-chars 2000]
    PYTHONPATH=src python benchmarks/bench_novelty.py --run RUN_DIR [--temperatures 0.2 0.5 0.8 1]

Each size runs in its own process (so its peak memory is its own). Size "bundled" is the
bundled Shakespeare corpus encoded with the char tokenizer (about 1.1 M tokens); a size in MB is
a synthetic corpus of that many one-byte tokens, made of the bundled corpus's lines drawn at
random with replacement (every line repeats, as in real crawled text, but long passages do not).
Reported: build seconds (wall and CPU), peak resident memory of the process (MiB), peak NumPy allocations
during the build (MiB, tracemalloc), bytes per token, and the time to report on a random
``--query-chars`` sample.

With ``--run``, instead: the copied fraction of samples from that run's model at each
temperature (``--samples`` samples of ``--length`` tokens from a newline, seeded), with
each ``--min-span``, and the longest copied span.
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
    start, cpu_start = time.perf_counter(), time.process_time()
    suffix_array = build_suffix_array(ids, int(ids.max()) + 1)
    build_s = time.perf_counter() - start
    cpu_s = time.process_time() - cpu_start
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
    results.put((size, len(ids), build_s, cpu_s, maxrss_mib, numpy_peak / 2**20, query_s))


def temperature_sweep(args: argparse.Namespace) -> None:
    from textgen import NoveltyIndex, SampleConfig, Sampler, load_checkpoint

    checkpoint = load_checkpoint(args.run)
    sampler = Sampler(checkpoint.build_model(), checkpoint.tokenizer)
    index = NoveltyIndex.for_run(args.run)
    meta = checkpoint.metadata
    print(
        f"{args.run}: step {meta.get('step')}, best val loss {meta.get('best_val_loss'):.4f}; "
        f"{args.samples} samples x {args.length} tokens per temperature"
    )
    spans = "".join(f" {f'copied% >={n}':>13}" for n in args.min_span)
    print(f"{'temperature':>11}{spans} {'longest (chars)':>16} {'mean longest':>13}")
    for temperature in args.temperatures:
        config = SampleConfig(
            max_new_tokens=args.length, temperature=temperature, num_samples=args.samples, seed=0
        )
        texts = [g.text for g in sampler.generate("\n", config)]
        row = ""
        for min_span in args.min_span:
            reports = [index.report(text, min_span=min_span) for text in texts]
            copied = sum(r.copied_chars for r in reports) / sum(r.num_chars for r in reports)
            row += f" {100 * copied:>13.1f}"
        longest = [r.longest.num_chars if r.longest else 0 for r in reports]
        print(f"{temperature:>11}{row} {max(longest):>16} {sum(longest) / len(longest):>13.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes-mb", nargs="+", default=["bundled", "100"])
    parser.add_argument("--query-chars", type=int, default=2000)
    parser.add_argument("--run", help="a run folder: measure copying against temperature")
    parser.add_argument("--temperatures", nargs="+", type=float, default=[0.2, 0.5, 0.8, 1.0])
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--length", type=int, default=500)
    parser.add_argument("--min-span", type=int, nargs="+", default=[50, 20])
    args = parser.parse_args()
    if args.run:
        temperature_sweep(args)
        return
    context = multiprocessing.get_context("spawn")
    print(
        f"{'corpus':>8} {'tokens':>12} {'build s':>8} {'cpu s':>7} {'max RSS MiB':>12} "
        f"{'numpy peak MiB':>15} {'B/token':>8} {'query s':>8}"
    )
    for size in args.sizes_mb:
        results = context.Queue()
        process = context.Process(target=run_one, args=(size, args.query_chars, results))
        process.start()
        name, tokens, build_s, cpu_s, rss, peak, query_s = results.get()
        process.join()
        print(
            f"{name:>8} {tokens:>12,} {build_s:>8.2f} {cpu_s:>7.2f} {rss:>12.0f} {peak:>15.0f} "
            f"{peak * 2**20 / tokens:>8.1f} {query_s:>8.2f}"
        )


if __name__ == "__main__":
    main()
