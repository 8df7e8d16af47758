"""Reading sources: files, folders, .gz, bundled corpora, UTF-8 errors and safe chunk cuts."""

from pathlib import Path

import pytest

from _text_files import TEXT, decode_split, write
from textgen.data import load_corpus, prepare_corpus, sources
from textgen.tokenizers import CharTokenizer, WordTokenizer


def test_chunked_encoding_equals_whole_text(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(sources, "READ_SIZE", 37)  # many chunks, cut mid-word and mid-character
    lines = TEXT.splitlines(keepends=True)
    files = [write(tmp_path / f"{i}.txt", "".join(lines[i * 20 : (i + 1) * 20])) for i in range(3)]
    for kind, whole_tokenizer in (("char", CharTokenizer()), ("word", WordTokenizer())):
        corpus = prepare_corpus(
            files, tokenizer_kind=kind, val_fraction=0, cache_dir=tmp_path / kind
        )
        whole = whole_tokenizer.fit([TEXT])
        assert corpus.tokenizer.to_dict() == whole.to_dict()
        assert corpus.train.ids.tolist() == whole.encode(TEXT)


def test_files_without_final_newline_are_separated(tmp_path: Path) -> None:
    files = [write(tmp_path / "a.txt", "end"), write(tmp_path / "b.txt", "start\n")]
    corpus = prepare_corpus(files, tokenizer_kind="word", val_fraction=0, cache_dir=tmp_path)
    assert decode_split(corpus, corpus.train) == "end\nstart\n"


def test_bad_utf8_names_file_and_offset(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.txt", "héllo".encode() + b"\xff rest\n")
    with pytest.raises(
        ValueError, match=r"bad\.txt: invalid UTF-8 at byte offset 6 .*encoding_errors='replace'"
    ):
        prepare_corpus(path, cache_dir=tmp_path)
    corpus = prepare_corpus(path, errors="replace", val_fraction=0, cache_dir=tmp_path)
    assert decode_split(corpus, corpus.train) == "héllo\ufffd rest\n"


def test_bad_utf8_offset_across_read_blocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sources, "READ_SIZE", 4)
    # "é" is split over two blocks; the bad byte sits later, in a gzip file
    path = write(tmp_path / "bad.txt.gz", b"abc" + "é".encode() + b"defgh\xc3(xyz")
    with pytest.raises(
        ValueError, match=r"bad\.txt\.gz: invalid UTF-8 at byte offset 10 of the decompressed"
    ):
        prepare_corpus(path, cache_dir=tmp_path)


def test_folder_recursion_gz_and_bundled_corpus(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    write(folder / "b.txt", "second\n")
    write(folder / "a" / "deep" / "x.txt", "first\n")
    write(folder / "c.txt.gz", "third\n")
    write(folder / "notes.md", "ignored\n")
    corpus = prepare_corpus(folder, val_fraction=0, cache_dir=tmp_path / "cache")
    assert decode_split(corpus, corpus.train) == "first\nsecond\nthird\n"
    bundled = prepare_corpus("shakespeare", cache_dir=tmp_path / "cache")
    assert bundled.val is not None and bundled.train.num_tokens > 800_000
    text = load_corpus("shakespeare")
    train, val = decode_split(bundled, bundled.train), decode_split(bundled, bundled.val)
    assert train + val == text  # the validation text is the end of the corpus
    assert abs(len(val.encode()) - 0.05 * len(text.encode())) < 200  # the default 5%


def test_split_without_newline_stays_on_a_character_boundary(tmp_path: Path) -> None:
    path = write(tmp_path / "one-line.txt", "é" * 500)
    corpus = prepare_corpus(path, val_fraction=0.25, cache_dir=tmp_path)
    assert corpus.val is not None
    assert corpus.train.num_tokens + corpus.val.num_tokens == 500
    assert corpus.val.num_bytes == 2 * corpus.val.num_tokens


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda p: write(p / "empty.txt", ""), ValueError, "corpus is empty: .*empty.txt"),
        (lambda p: p / "missing.txt", FileNotFoundError, "missing.txt' does not exist"),
        (lambda p: write(p / "d" / "a.md", "x").parent, ValueError, "holds no files matching"),
        (lambda p: write(p / "tiny.txt", "a"), ValueError, "too small to hold out"),
        (lambda p: [], ValueError, "sources is empty"),
    ],
)
def test_bad_sources(tmp_path: Path, make, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        prepare_corpus(make(tmp_path), cache_dir=tmp_path / "cache")


def test_crlf_text_without_spaces_is_cut_safely_for_every_tokenizer():
    from textgen.data.sources import text_chunks
    from textgen.tokenizers import BPETokenizer, CharTokenizer, WordTokenizer

    text = "".join(f"第{i}行の文章です。\r\n" for i in range(400)) + "end  of\r\n\r\ntext\r\n"
    pieces = [text[i : i + 97] for i in range(0, len(text), 97)]
    chunks = list(text_chunks(pieces, chunk_chars=500))
    assert len(chunks) > 5 and "".join(chunks) == text
    assert all(chunk[-1] not in "\r\n" for chunk in chunks[:-1])  # cut before the line break
    for tokenizer in (CharTokenizer(), WordTokenizer(), BPETokenizer(vocab_size=300)):
        tokenizer.fit([text])
        whole = tokenizer.encode(text)
        assert [i for chunk in chunks for i in tokenizer.encode(chunk)] == whole


def test_the_last_cut_is_found_from_the_end_as_a_full_scan_finds_it():
    """`_last_cut` searches growing windows from the end; it must equal scanning everything."""
    import random

    from textgen.data.sources import _NEWLINE_CUT, _SPACE_CUT, _last_cut

    def full_scan(text: str, start: int) -> int:
        for pattern in (_NEWLINE_CUT, _SPACE_CUT):
            ends = [m.end() for m in pattern.finditer(text, start)]
            if ends:
                return ends[-1]
        return 0

    rng = random.Random(0)
    for _ in range(200):
        # long runs without any cut, so the answer is often far from the end (window growth)
        body = "x" * rng.choice([0, 10, 5000, 40000, 300000])
        pieces = [
            rng.choice(["ab", " ", "\n", "\r\n", "  ", "cd"]) for _ in range(rng.randint(0, 6))
        ]
        text = "".join(pieces) + body if rng.random() < 0.5 else body + "".join(pieces) + body
        start = rng.randint(0, max(len(text) - 1, 0))
        start = 0 if rng.random() < 0.5 else start
        assert _last_cut(text, start) == full_scan(text, start)
