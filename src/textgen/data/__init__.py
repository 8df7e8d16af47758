"""The data pipeline: sources -> token cache -> batches.

``sources`` reads files, folders and bundled corpora (``corpora``) as a stream of text chunks;
``prepare`` holds `DataConfig` and `prepare_corpus`, which splits off validation text, fits the
tokenizer and has the ids encoded into the token ``cache`` (memory-mapped arrays); ``batching``
turns ids into int64 ``(x, y)`` batches of shape (B, T). Import the public names from here.
"""

from textgen.data.batching import RandomWindowBatcher, StreamBatcher, clamp_batch_size
from textgen.data.cache import Corpus, TokenSplit, default_cache_dir
from textgen.data.corpora import available_corpora, corpus_path, is_corpus_name, load_corpus
from textgen.data.prepare import DataConfig, prepare_corpus

__all__ = [
    "Corpus",
    "DataConfig",
    "RandomWindowBatcher",
    "StreamBatcher",
    "TokenSplit",
    "available_corpora",
    "clamp_batch_size",
    "corpus_path",
    "default_cache_dir",
    "is_corpus_name",
    "load_corpus",
    "prepare_corpus",
]
