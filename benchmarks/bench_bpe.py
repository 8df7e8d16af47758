"""Benchmark textgen's byte-level BPE: training time, encoding speed and compression.

Run by hand from the repository root (not part of the tests):

    PYTHONPATH=src python benchmarks/bench_bpe.py [CORPUS] [--vocab-size 8192]

CORPUS defaults to ../shared/data/shakespeare_complete.txt (relative to the repository root).
Targets on that 5 MB file with vocabulary 8192: training within 20 s, encoding at least 1 MB/s,
at least 3.32 bytes per token. When the Hugging Face ``tokenizers`` package is importable, the
same figures are printed for its byte-level BPE as a reference (it is not a textgen dependency).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from pathlib import Path

from textgen.tokenizers import END_OF_TEXT, BPETokenizer

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CORPUS = REPO_ROOT.parent / "shared" / "data" / "shakespeare_complete.txt"
CHUNK_CHARS = 1 << 20


def chunks(text: str, size: int = CHUNK_CHARS) -> Iterator[str]:
    """The text in pieces, as a file would be streamed during training."""
    for start in range(0, len(text), size):
        yield text[start : start + size]


def bench_textgen(text: str, vocab_size: int) -> None:
    num_bytes = len(text.encode("utf-8"))
    start = time.perf_counter()
    tokenizer = BPETokenizer(vocab_size, special_tokens=(END_OF_TEXT,)).fit(chunks(text))
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    ids = tokenizer.encode(text)
    encode_s = time.perf_counter() - start
    assert tokenizer.decode(ids) == text, "round trip failed"
    report("textgen", tokenizer.vocab_size, train_s, encode_s, num_bytes, len(ids))


def bench_huggingface(text: str, vocab_size: int) -> None:
    try:
        from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    except ImportError:
        print("huggingface tokenizers: not installed (pip install tokenizers to compare)")
        return
    num_bytes = len(text.encode("utf-8"))
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=[END_OF_TEXT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    start = time.perf_counter()
    tokenizer.train_from_iterator(chunks(text), trainer)
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    num_tokens = len(tokenizer.encode(text).ids)
    encode_s = time.perf_counter() - start
    report("huggingface", tokenizer.get_vocab_size(), train_s, encode_s, num_bytes, num_tokens)


def report(
    name: str, vocab_size: int, train_s: float, encode_s: float, num_bytes: int, num_tokens: int
) -> None:
    print(
        f"{name:>12}: vocab {vocab_size}, train {train_s:.2f} s, "
        f"encode {num_bytes / 1e6 / encode_s:.2f} MB/s ({encode_s:.2f} s), "
        f"{num_bytes / num_tokens:.3f} bytes/token ({num_tokens} tokens)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", nargs="?", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--vocab-size", type=int, default=8192)
    args = parser.parse_args()
    text = args.corpus.read_text(encoding="utf-8")
    print(f"corpus: {args.corpus} ({len(text.encode('utf-8')) / 1e6:.2f} MB)")
    bench_textgen(text, args.vocab_size)
    bench_huggingface(text, args.vocab_size)


if __name__ == "__main__":
    main()
