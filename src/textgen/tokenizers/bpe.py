"""Byte-level BPE tokenizer: the subword member of the tokenizer family (text -> ids -> batches).

`BPETokenizer` learns merges on the user's own corpus. It works on UTF-8 bytes, so every string
encodes without an unknown token, and `decode_bytes` may end inside a character (streaming output
holds such a tail back with an incremental UTF-8 decoder). Training streams text chunks, keeps
only the counts of unique pre-tokens in memory, and updates pair counts incrementally where a
merge applies. The JSON form stores the merges as token-id pairs, so a checkpoint reproduces the
encoding exactly.
"""

from __future__ import annotations

import heapq
import operator
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from itertools import pairwise
from typing import Any

from textgen.tokenizers.base import END_OF_TEXT, Tokenizer, register_tokenizer

#: GPT-2's pre-tokenization pattern rewritten for Python's ``re`` (which lacks ``\p{L}``):
#: ``[^\W\d_]`` stands for letters, ``\d`` for digits, ``[^\s\w]|_`` for other symbols.
PRETOKEN_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?[^\W\d_]+| ?\d+| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+"""

_NUM_BYTES = 256
_CACHE_LIMIT = 1 << 18  # pre-tokens remembered by encode before the cache starts afresh
_CONFIG_KEYS = ("vocab_size", "min_frequency", "special_tokens", "merges")


@register_tokenizer
class BPETokenizer(Tokenizer):
    """Byte-level byte-pair encoding trained on your corpus (GPT-2 style, no dependencies).

    Vocabulary layout: ids 0-255 are the raw bytes, then one id per special token (in the order
    given), then one id per learned merge (in the order learned).

    Pre-tokenization splits text with `PRETOKEN_PATTERN`, GPT-2's pattern
    ``'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+`` written
    for ``re``: ``'s|'t|'re|'ve|'m|'ll|'d| ?[^\\W\\d_]+| ?\\d+| ?(?:[^\\s\\w]|_)+|\\s+(?!\\S)|\\s+``
    (letters are word characters that are neither digits nor ``_``; numeric characters other than
    decimal digits, such as "²", count as letters). Merges never cross a pre-token, so they stay
    inside words, numbers, punctuation runs and whitespace runs.

    Special tokens (for example ``"<|endoftext|>"``) are matched in the text first, longest
    first, and always become their own id: they are never split or merged, and training text
    around them is counted as separate pieces.

    Training repeatedly merges the most frequent adjacent pair of tokens, counted over unique
    pre-tokens weighted by their frequency. Ties go to the pair with the smallest
    ``(left id, right id)``, so the same corpus and settings always give the same merges.
    Training stops at ``vocab_size`` or when no pair occurs ``min_frequency`` times.

    Args:
        vocab_size: the largest vocabulary to learn, bytes and special tokens included
            (at least ``256 + len(special_tokens)``).
        min_frequency: a pair must occur at least this often in the training text to be merged.
        special_tokens: strings that are always single tokens.

    Example:
        >>> tokenizer = BPETokenizer(vocab_size=300).fit(["low lower lowest " * 10])
        >>> ids = tokenizer.encode("lowest<|endoftext|>")
        >>> tokenizer.decode(ids)
        'lowest<|endoftext|>'
    """

    kind = "bpe"

    def __init__(
        self,
        vocab_size: int = 2048,
        *,
        min_frequency: int = 2,
        special_tokens: Sequence[str] = (END_OF_TEXT,),
    ) -> None:
        self._special_tokens = _check_special_tokens(special_tokens)
        self._max_vocab_size = _check_int(
            "vocab_size", vocab_size, _NUM_BYTES + len(special_tokens)
        )
        self._min_frequency = _check_int("min_frequency", min_frequency, 1)
        self._pattern = re.compile(PRETOKEN_PATTERN)
        ordered = sorted(self._special_tokens, key=len, reverse=True)
        self._special_pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None
        self._special_ids = {s: _NUM_BYTES + i for i, s in enumerate(self._special_tokens)}
        self._merges: list[tuple[int, int]] | None = None
        self._merge_ids: dict[tuple[int, int], int] = {}
        self._token_bytes: list[bytes] = []
        self._cache: dict[str, list[int]] = {}

    # ----------------------------------------------------------------------------- training
    def fit(self, texts: Iterable[str]) -> BPETokenizer:
        """Learn merges from training text given as chunks (a single string also works).

        Only the counts of unique pre-tokens are kept, never the text. A pre-token or special
        token cut by a chunk boundary is carried over to the next chunk, so chunking does
        not change the merges.

        Args:
            texts: iterable of text chunks (for example the lines or blocks of a file).

        Returns:
            ``self``, fitted.

        Raises:
            TypeError: a chunk is not a ``str``.
        """
        counts = self._count_pretokens([texts] if isinstance(texts, str) else texts)
        word_counts = {token.encode("utf-8"): count for token, count in counts.items()}
        first_id = _NUM_BYTES + len(self._special_tokens)
        num_merges = self._max_vocab_size - first_id
        self._set_merges(_learn_merges(word_counts, num_merges, self._min_frequency, first_id))
        return self

    def _count_pretokens(self, texts: Iterable[str]) -> Counter[str]:
        counts: Counter[str] = Counter()
        carry = ""
        for index, chunk in enumerate(texts):
            if not isinstance(chunk, str):
                raise TypeError(
                    f"fit expects text chunks (str); chunk {index} is {type(chunk).__name__}"
                )
            text = carry + chunk
            cut = len(text) - self._partial_special_length(text)
            pieces = self._split_specials(text[:cut])
            for piece in pieces[:-1]:
                counts.update(self._pattern.findall(piece))
            tokens = self._pattern.findall(pieces[-1])
            # The last pre-tokens may continue in the next chunk ("'r" + "e" is "'re"):
            # carry the last two over and count them once they are whole.
            carry = "".join(tokens[-2:]) + text[cut:]
            counts.update(tokens[:-2])
        for piece in self._split_specials(carry):
            counts.update(self._pattern.findall(piece))
        return counts

    def _split_specials(self, text: str) -> list[str]:
        return self._special_pattern.split(text) if self._special_pattern else [text]

    def _partial_special_length(self, text: str) -> int:
        """Length of the longest end of ``text`` that begins (but does not complete) a special."""
        longest = 0
        for special in self._special_tokens:
            for length in range(len(special) - 1, longest, -1):
                if text.endswith(special[:length]):
                    longest = length
                    break
        return longest

    def _set_merges(self, merges: list[tuple[int, int]]) -> None:
        token_bytes = [bytes([b]) for b in range(_NUM_BYTES)]
        token_bytes += [s.encode("utf-8") for s in self._special_tokens]
        first_id = len(token_bytes)
        for left, right in merges:
            token_bytes.append(token_bytes[left] + token_bytes[right])
        self._merges = merges
        self._merge_ids = {pair: first_id + rank for rank, pair in enumerate(merges)}
        self._token_bytes = token_bytes
        self._cache = {}

    # ----------------------------------------------------------------------------- encoding
    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``; special tokens in the text become their ids.

        Raises:
            ValueError: the tokenizer is not fitted.
            TypeError: ``text`` is not a ``str``.
        """
        self._require_fitted()
        if not isinstance(text, str):
            raise TypeError(f"encode expects a str, got {type(text).__name__}")
        ids: list[int] = []
        if self._special_pattern is None:
            self._encode_ordinary(text, ids)
            return ids
        start = 0
        for match in self._special_pattern.finditer(text):
            self._encode_ordinary(text[start : match.start()], ids)
            ids.append(self._special_ids[match.group()])
            start = match.end()
        self._encode_ordinary(text[start:], ids)
        return ids

    def _encode_ordinary(self, text: str, ids: list[int]) -> None:
        cache = self._cache
        for piece in self._pattern.findall(text):
            piece_ids = cache.get(piece)
            if piece_ids is None:
                piece_ids = self._encode_piece(piece)
                if len(cache) >= _CACHE_LIMIT:
                    cache.clear()
                cache[piece] = piece_ids
            ids.extend(piece_ids)

    def _encode_piece(self, piece: str) -> list[int]:
        """Apply the merges to one pre-token, lowest rank (earliest learned) first."""
        word = list(piece.encode("utf-8"))
        merge_ids = self._merge_ids
        merges = self._merges
        assert merges is not None
        missing = len(self._token_bytes)  # larger than every merged id
        first_id = missing - len(merges)
        while len(word) > 1:
            new_id = min(merge_ids.get(pair, missing) for pair in pairwise(word))
            if new_id == missing:
                break
            left, right = merges[new_id - first_id]
            merged: list[int] = []
            i = 0
            while i < len(word):
                if i + 1 < len(word) and word[i] == left and word[i + 1] == right:
                    merged.append(new_id)
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = merged
        return word

    def decode_bytes(self, ids: Sequence[int]) -> bytes:
        """Raw bytes of ``ids``; may end inside a multi-byte UTF-8 character.

        Raises:
            ValueError: the tokenizer is not fitted, or an id is outside ``[0, vocab_size)``.
        """
        self._require_fitted()
        table = self._token_bytes
        size = len(table)
        try:
            if all(0 <= i < size for i in ids):
                return b"".join([table[i] for i in ids])
        except TypeError:
            pass
        for token_id in ids:
            try:
                valid = 0 <= operator.index(token_id) < size
            except TypeError:
                valid = False
            if not valid:
                raise ValueError(f"token id {token_id!r} is not in the vocabulary (0..{size - 1})")
        raise AssertionError("unreachable: every id was valid")  # pragma: no cover

    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids``; an incomplete or invalid UTF-8 sequence decodes to U+FFFD."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    # ----------------------------------------------------------------------------- vocabulary
    @property
    def is_fitted(self) -> bool:
        """Whether the merges are known (after `fit` or loading)."""
        return self._merges is not None

    @property
    def vocab_size(self) -> int:
        """Number of token ids: 256 bytes + special tokens + learned merges.

        Raises:
            ValueError: the tokenizer is not fitted.
        """
        self._require_fitted()
        return len(self._token_bytes)

    @property
    def eos_id(self) -> int | None:
        """Id of ``"<|endoftext|>"`` when it is a declared special token, else None."""
        return self._special_ids.get(END_OF_TEXT)

    @property
    def special_tokens(self) -> tuple[str, ...]:
        return self._special_tokens

    @property
    def merges(self) -> list[tuple[int, int]]:
        """Learned merges as ``(left id, right id)`` pairs, in the order they were learned."""
        self._require_fitted()
        return list(self._merges)  # type: ignore[arg-type]

    def token_bytes(self, token_id: int) -> bytes:
        """The bytes one token stands for (a special token's UTF-8 text)."""
        return self.decode_bytes([token_id])

    def _require_fitted(self) -> None:
        if self._merges is None:
            raise ValueError(
                "BPETokenizer is not fitted; call fit(texts) or load a saved tokenizer first"
            )

    # ----------------------------------------------------------------------------- JSON
    def _config(self) -> dict[str, Any]:
        merges = None if self._merges is None else [[left, right] for left, right in self._merges]
        return {
            "vocab_size": self._max_vocab_size,
            "min_frequency": self._min_frequency,
            "special_tokens": list(self._special_tokens),
            "merges": merges,
        }

    @classmethod
    def _from_config(cls, config: dict[str, Any]) -> BPETokenizer:
        missing = [key for key in _CONFIG_KEYS if key not in config]
        unknown = sorted(set(config) - set(_CONFIG_KEYS))
        if missing or unknown:
            raise ValueError(f"bpe tokenizer fields: missing {missing}, unexpected {unknown}")
        try:
            tokenizer = cls(
                config["vocab_size"],
                min_frequency=config["min_frequency"],
                special_tokens=config["special_tokens"],
            )
        except TypeError as error:
            raise ValueError(f"bpe tokenizer: {error}") from error
        if config["merges"] is not None:
            tokenizer._set_merges(_check_merges(config["merges"], tokenizer))
        return tokenizer


def _learn_merges(
    word_counts: dict[bytes, int], num_merges: int, min_frequency: int, first_id: int
) -> list[tuple[int, int]]:
    """The BPE training loop over unique words (byte strings) and their counts.

    ``pair_counts`` holds every adjacent pair's frequency and ``where`` the words it may occur
    in; a merge rewrites only those words and adjusts only the pairs around each merge site.
    A max-heap of ``(-count, left, right)`` picks the next pair; entries go stale when a count
    drops, so a popped entry is checked against ``pair_counts`` and pushed back when too high.
    """
    words = [list(word) for word in word_counts if len(word) > 1]
    counts = [count for word, count in word_counts.items() if len(word) > 1]
    pair_counts: defaultdict[tuple[int, int], int] = defaultdict(int)
    where: defaultdict[tuple[int, int], set[int]] = defaultdict(set)
    for index, word in enumerate(words):
        for pair in pairwise(word):
            pair_counts[pair] += counts[index]
            where[pair].add(index)
    heap = [(-count, left, right) for (left, right), count in pair_counts.items()]
    heapq.heapify(heap)
    merges: list[tuple[int, int]] = []
    while heap and len(merges) < num_merges:
        negative_count, left, right = heapq.heappop(heap)
        count = pair_counts.get((left, right), 0)
        if count != -negative_count:
            if 0 < count < -negative_count:
                heapq.heappush(heap, (-count, left, right))
            continue
        if count < min_frequency:
            break
        new_id = first_id + len(merges)
        merges.append((left, right))
        del pair_counts[(left, right)]
        new_pairs = _apply_merge(
            words, counts, where.pop((left, right)), left, right, new_id, pair_counts
        )
        for pair, pair_words in new_pairs.items():
            where[pair].update(pair_words)
            if pair_counts[pair] > 0:
                heapq.heappush(heap, (-pair_counts[pair], *pair))
    return merges


def _apply_merge(
    words: list[list[int]],
    counts: list[int],
    indices: set[int],
    left: int,
    right: int,
    new_id: int,
    pair_counts: defaultdict[tuple[int, int], int],
) -> dict[tuple[int, int], list[int]]:
    """Merge ``(left, right)`` into ``new_id`` in the given words, in place, left to right.

    Returns the pairs containing ``new_id`` with the words they now occur in. Pairs that lost
    occurrences keep stale entries in ``where``; merging a word without the pair changes nothing.
    """
    new_pairs: dict[tuple[int, int], list[int]] = {}
    for index in indices:
        word, count = words[index], counts[index]
        i = 0
        while i < len(word) - 1:
            if word[i] == left and word[i + 1] == right:
                if i > 0:
                    before = word[i - 1]
                    pair_counts[(before, left)] -= count
                    pair_counts[(before, new_id)] += count
                    new_pairs.setdefault((before, new_id), []).append(index)
                if i + 2 < len(word):
                    after = word[i + 2]
                    pair_counts[(right, after)] -= count
                    pair_counts[(new_id, after)] += count
                    new_pairs.setdefault((new_id, after), []).append(index)
                word[i : i + 2] = [new_id]
            i += 1
    pair_counts.pop((left, right), None)
    return new_pairs


def _check_int(name: str, value: Any, minimum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def _check_special_tokens(special_tokens: Any) -> tuple[str, ...]:
    if isinstance(special_tokens, str) or not isinstance(special_tokens, (list, tuple)):
        raise TypeError(
            f"special_tokens must be a list or tuple of strings, got {special_tokens!r}"
        )
    for token in special_tokens:
        if not isinstance(token, str) or not token:
            raise ValueError(f"special token {token!r} must be a non-empty string")
    if len(set(special_tokens)) != len(special_tokens):
        raise ValueError(f"special_tokens has duplicates: {list(special_tokens)!r}")
    return tuple(special_tokens)


def _check_merges(merges: Any, tokenizer: BPETokenizer) -> list[tuple[int, int]]:
    """Validate stored merges: pairs of existing, non-special ids, no repeats, within vocab_size."""
    if not isinstance(merges, list):
        raise ValueError(f"bpe tokenizer 'merges' must be a list, got {type(merges).__name__}")
    first_id = _NUM_BYTES + len(tokenizer.special_tokens)
    if first_id + len(merges) > tokenizer._max_vocab_size:
        raise ValueError(
            f"bpe tokenizer has {len(merges)} merges, more than vocab_size "
            f"{tokenizer._max_vocab_size} allows ({tokenizer._max_vocab_size - first_id})"
        )
    special_ids = range(_NUM_BYTES, first_id)
    checked: list[tuple[int, int]] = []
    for rank, merge in enumerate(merges):
        ok = isinstance(merge, list) and len(merge) == 2
        ok = ok and all(isinstance(i, int) and not isinstance(i, bool) for i in merge)
        ok = ok and all(0 <= i < first_id + rank and i not in special_ids for i in merge)
        if not ok:
            raise ValueError(
                f"bpe tokenizer merge {rank} is {merge!r}; expected [left id, right id] of "
                f"byte or earlier merged tokens (ids below {first_id + rank}, not special)"
            )
        checked.append((merge[0], merge[1]))
    if len(set(checked)) != len(checked):
        raise ValueError("bpe tokenizer 'merges' contains the same pair twice")
    return checked
