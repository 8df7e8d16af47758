"""Benchmark the data pipeline: encode throughput and peak memory on a large synthetic corpus.

Run by hand (not part of the tests):

    python benchmarks/bench_data.py --size-mb 200 [--tokenizer char|word]
    python benchmarks/bench_data.py --train-sizes 10 100 300 1024 [--train-steps 300]

It writes a corpus of shuffled lines of the bundled Shakespeare text to a temporary folder
(in blocks, never whole in memory), then runs `prepare_corpus` twice, each time in a fresh
child process so the peak RSS it reports is that run's own: the first run fits the tokenizer
and encodes into an empty cache, the second must reuse the cache. Peak RSS is reported above
the baseline of a process that has only imported torch and textgen (target: < 300 MB).

With ``--train-sizes`` it measures whole training runs instead: for each corpus size, a fresh
process runs ``textgen train CORPUS --max-steps N --eval-every 100`` (default settings
otherwise, an empty cache, so reading and encoding are included) and reports its wall time and
peak RSS, and both as ratios to the smallest corpus (targets: peak RSS on 1 GB within 300 MB
of 10 MB; wall time on 300 MB at most 1.5x that on 10 MB).
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MIB = 1 << 20


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far (VmHWM), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource  # not Linux: ru_maxrss is KiB on Linux, bytes on macOS

    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / MIB


def write_corpus(path: Path, size_mib: int, seed: int = 0) -> int:
    """Write shuffled lines of the bundled corpus until ``size_mib`` MiB; returns bytes."""
    from textgen.data import load_corpus

    lines = load_corpus("shakespeare").splitlines(keepends=True)
    rng = random.Random(seed)
    written = 0
    with path.open("w", encoding="utf-8") as handle:
        while written < size_mib * MIB:
            rng.shuffle(lines)
            block = "".join(lines[:20_000])
            handle.write(block)
            written += len(block.encode("utf-8"))
    return written


def child(corpus: str, cache_dir: str, tokenizer_kind: str) -> None:
    """Run one `prepare_corpus` and print its numbers as JSON (runs in a subprocess)."""
    import torch  # noqa: F401  (part of the baseline)

    from textgen.data import prepare_corpus

    baseline = peak_rss_mib()
    start = time.perf_counter()
    result = prepare_corpus(corpus, tokenizer_kind=tokenizer_kind, cache_dir=cache_dir)
    seconds = time.perf_counter() - start
    num_bytes = result.train.num_bytes + (result.val.num_bytes if result.val else 0)
    num_tokens = result.train.num_tokens + (result.val.num_tokens if result.val else 0)
    report = {
        "seconds": seconds,
        "baseline_mib": baseline,
        "peak_above_baseline_mib": peak_rss_mib() - baseline,
        "from_cache": result.from_cache,
        "num_bytes": num_bytes,
        "num_tokens": num_tokens,
        "vocab_size": result.tokenizer.vocab_size,
        "dtype": result.train.ids.dtype.name,
        "encode_only_mib_s": _encode_only(Path(corpus), result.tokenizer),
    }
    print(json.dumps(report))


def _encode_only(corpus: Path, tokenizer: object, limit: int = 64 * MIB) -> float:
    """MiB/s of ``tokenizer.encode_array`` alone over the first ``limit`` bytes, 4 MiB a call."""
    from textgen.data.sources import READ_SIZE

    seconds = done = 0.0
    with corpus.open("r", encoding="utf-8") as handle:
        while done < limit and (text := handle.read(READ_SIZE)):
            start = time.perf_counter()
            tokenizer.encode_array(text)  # type: ignore[attr-defined]
            seconds += time.perf_counter() - start
            done += len(text.encode("utf-8"))
    return done / MIB / seconds


def train_child(argv: list[str]) -> None:
    """In a fresh process: run ``textgen ARGV`` and print its exit code and peak RSS as JSON."""
    from textgen.cli import main as textgen_main

    code = textgen_main(argv)
    print(json.dumps({"code": code, "peak_mib": peak_rss_mib()}))


def train_run(corpus: Path, folder: Path, steps: int) -> dict:
    """Wall time and peak RSS of one ``textgen train`` in a fresh process, empty cache."""
    argv = [
        "train", str(corpus), "--out", str(folder / "run"), "--overwrite", "--quiet",
        "--max-steps", str(steps), "--eval-every", "100", "--cache-dir", str(folder / "cache"),
    ]  # fmt: skip
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, __file__, "--train-child", *argv],
        check=True,
        capture_output=True,
        text=True,
    )
    report = json.loads(done.stdout.strip().splitlines()[-1])
    return {**report, "seconds": time.perf_counter() - start}


def train_sizes(sizes: list[int], steps: int) -> None:
    import torch

    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; {steps} steps each, "
        f"validated every 100 (default settings otherwise), empty cache"
    )
    print("corpus MiB   wall s   peak RSS MiB   wall / smallest   RSS - smallest")
    first: dict | None = None
    for size in sizes:
        with tempfile.TemporaryDirectory(prefix="textgen-bench-") as name:
            folder = Path(name)
            write_corpus(folder / "corpus.txt", size)
            result = train_run(folder / "corpus.txt", folder, steps)
        first = first or result
        print(
            f"{size:10d} {result['seconds']:8.1f} {result['peak_mib']:14.0f} "
            f"{result['seconds'] / first['seconds']:17.2f} "
            f"{result['peak_mib'] - first['peak_mib']:16.0f}"
        )


def run_child(corpus: Path, cache_dir: Path, tokenizer_kind: str) -> dict:
    command = [sys.executable, __file__, "--child", str(corpus), str(cache_dir), tokenizer_kind]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=200, help="corpus size in MiB (>= 200)")
    parser.add_argument("--tokenizer", choices=["char", "word"], default="char")
    parser.add_argument("--train-sizes", type=int, nargs="+", help="MiB: time whole runs")
    parser.add_argument("--train-steps", type=int, default=300)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--train-child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    if args.train_child:
        train_child(args.train_child)
        return
    if args.train_sizes:
        train_sizes(args.train_sizes, args.train_steps)
        return

    with tempfile.TemporaryDirectory(prefix="textgen-bench-") as folder:
        corpus, cache_dir = Path(folder) / "corpus.txt", Path(folder) / "cache"
        start = time.perf_counter()
        size = write_corpus(corpus, args.size_mb)
        print(f"corpus: {size / MIB:.1f} MiB written in {time.perf_counter() - start:.1f} s")
        first = run_child(corpus, cache_dir, args.tokenizer)
        second = run_child(corpus, cache_dir, args.tokenizer)

    assert not first["from_cache"] and second["from_cache"], "the second run must reuse the cache"
    mib = first["num_bytes"] / MIB
    print(
        f"tokenizer: {args.tokenizer}, vocab {first['vocab_size']}, ids {first['dtype']}, "
        f"{first['num_tokens']:,} tokens"
    )
    print(
        f"first run (scan + fit + encode): {first['seconds']:.1f} s, "
        f"{mib / first['seconds']:.1f} MiB/s end to end; "
        f"encode_array alone: {first['encode_only_mib_s']:.0f} MiB/s"
    )
    print(
        f"peak RSS above the python+torch+textgen baseline "
        f"({first['baseline_mib']:.0f} MiB): {first['peak_above_baseline_mib']:.1f} MiB "
        f"(target < 300)"
    )
    print(
        f"second run (cache reused: {second['from_cache']}): {second['seconds']:.2f} s, "
        f"peak above baseline {second['peak_above_baseline_mib']:.1f} MiB"
    )


if __name__ == "__main__":
    main()
