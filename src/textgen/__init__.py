"""textgen: train and sample recurrent text-generation models with PyTorch."""

from textgen.datasets import available_corpora, corpus_path, load_corpus
from textgen.runtime import resolve_device, seed_everything
from textgen.tokenizer import Tokenizer, UnknownTokenError, tokenizer_from_dict

__version__ = "0.1.0"

__all__ = [
    "Tokenizer",
    "UnknownTokenError",
    "__version__",
    "available_corpora",
    "corpus_path",
    "load_corpus",
    "resolve_device",
    "seed_everything",
    "tokenizer_from_dict",
]
