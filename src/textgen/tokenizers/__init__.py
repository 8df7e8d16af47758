"""Tokenizers: text <-> token ids, the first step of the flow (text -> ids -> batches -> model).

One interface (`Tokenizer`, in `base`) and three kinds, one module each: `CharTokenizer`
(Unicode code points), `WordTokenizer` (words, punctuation and whitespace) and the trainable
byte-level `BPETokenizer`. Importing this package registers all three, so `tokenizer_from_dict`
and `build_tokenizer` know every kind without importing anything lazily.
"""

from textgen.tokenizers.base import (
    END_OF_TEXT,
    TOKENIZER_FORMAT_VERSION,
    UNK_TOKEN,
    Tokenizer,
    UnknownTokenError,
    build_tokenizer,
    register_tokenizer,
    tokenizer_from_dict,
)
from textgen.tokenizers.bpe import PRETOKEN_PATTERN, BPETokenizer
from textgen.tokenizers.char import CharTokenizer
from textgen.tokenizers.word import WordTokenizer

__all__ = [
    "END_OF_TEXT",
    "PRETOKEN_PATTERN",
    "TOKENIZER_FORMAT_VERSION",
    "UNK_TOKEN",
    "BPETokenizer",
    "CharTokenizer",
    "Tokenizer",
    "UnknownTokenError",
    "WordTokenizer",
    "build_tokenizer",
    "register_tokenizer",
    "tokenizer_from_dict",
]
