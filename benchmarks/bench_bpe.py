"""Benchmark textgen's byte-level BPE: training time, encoding speed and compression.

Run by hand from the repository root (not part of the tests):

    PYTHONPATH=src python benchmarks/bench_bpe.py [CORPUS] [--vocab-size 8192]

CORPUS is a text file or a bundled corpus name (default: the bundled ``shakespeare``, 1 MB).
Targets on a 5 MB Shakespeare file with vocabulary 8192: training within 20 s, encoding at least
1 MB/s, at least 3.32 bytes per token. When the Hugging Face ``tokenizers`` package is
importable, the same figures are printed for its byte-level BPE as a reference (it is not a
textgen dependency). Each library encodes the text the way it is built to be used: textgen's
``encode`` takes the whole text (it splits it itself), Hugging Face's ``encode_batch`` takes the
lines (its ``encode`` on one multi-megabyte string is several times slower, and would be an
unfair comparison); the byte-level pre-tokenizer splits at whitespace either way, so the token
counts agree.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from pathlib import Path

from textgen.data import is_corpus_name, load_corpus
from textgen.tokenizers import END_OF_TEXT, BPETokenizer

DEFAULT_CORPUS = "shakespeare"
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
    num_tokens = sum(len(e.ids) for e in tokenizer.encode_batch(text.splitlines(keepends=True)))
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
    parser.add_argument(
        "corpus", nargs="?", default=DEFAULT_CORPUS, help="a text file or a bundled corpus name"
    )
    parser.add_argument("--vocab-size", type=int, default=8192)
    args = parser.parse_args()
    if is_corpus_name(args.corpus) and not Path(args.corpus).exists():
        text = load_corpus(args.corpus)
    else:
        text = Path(args.corpus).read_text(encoding="utf-8")
    print(f"corpus: {args.corpus} ({len(text.encode('utf-8')) / 1e6:.2f} MB)")
    bench_textgen(text, args.vocab_size)
    bench_huggingface(text, args.vocab_size)


if __name__ == "__main__":
    main()
