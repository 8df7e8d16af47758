"""StopMatcher on its own: stops across token boundaries, split characters, hold-back, earliest."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from textgen.stopping import StopMatcher, match_pieces


def feed_all(matcher: StopMatcher, pieces: list[bytes]) -> list[str]:
    """What the matcher releases for each piece, then at close (unless it stopped)."""
    out = []
    for piece in pieces:
        out.append(matcher.feed(piece))
        if matcher.stopped:
            return out
    return [*out, matcher.close()]


def test_stop_across_token_boundaries_cuts_before_it() -> None:
    matcher = StopMatcher(["END"])
    assert feed_all(matcher, [b"ab", b"cE", b"N", b"Dxyz"]) == ["ab", "c", "", ""]
    assert matcher.stopped


def test_multibyte_character_split_across_tokens_waits_for_its_last_byte() -> None:
    e1, e2 = "é".encode()
    matcher = StopMatcher()
    assert [matcher.feed(b) for b in (b"caf" + bytes([e1]), bytes([e2]), b"!")] == ["caf", "é", "!"]
    assert matcher.close() == "" and not matcher.stopped


def test_multibyte_stop_string_split_across_tokens() -> None:
    snowman = "☃".encode()  # three bytes, each its own token
    matcher = StopMatcher(["☃!"])
    pieces = [b"x", snowman[:1], snowman[1:2], snowman[2:], b"!", b"after"]
    assert feed_all(matcher, pieces) == ["x", "", "", "", ""]
    assert matcher.stopped


def test_tail_that_could_begin_a_stop_is_held_back_then_released() -> None:
    matcher = StopMatcher(["abc"])
    assert [matcher.feed(p) for p in (b"xa", b"b", b"d")] == ["x", "", "abd"]
    assert matcher.feed(b"ab") == ""  # held back again
    assert matcher.close() == "ab" and not matcher.stopped  # the sequence ended: release it


def test_earliest_of_several_stops() -> None:
    assert match_pieces([b"xx bc abcd"], ["abcd", "bc"]) == ("xx ", 0)
    # Within one piece the earliest start wins...
    assert match_pieces([b"abcde"], ["cd", "bcde"]) == ("a", 0)
    # ...across pieces the first stop to complete ends the text, cut at the earliest found then.
    assert match_pieces([b"a", b"b", b"c", b"d", b"e"], ["cd", "bcde"]) == ("ab", 3)


def test_stop_at_the_very_start() -> None:
    matcher = StopMatcher(("ab", "zz"))
    assert matcher.feed(b"a") == ""
    assert matcher.feed(b"b") == "" and matcher.stopped
    assert matcher.feed(b"more") == "" and matcher.close() == ""  # ignored after the stop
    assert match_pieces([b"ab"], ["ab"]) == ("", 0)


def test_no_stop_strings_pass_text_through_and_close_replaces_a_dangling_byte() -> None:
    matcher = StopMatcher()
    assert matcher.feed(b"ok") == "ok"
    assert matcher.feed(b"\xe2\x98") == ""
    assert matcher.close() == "\ufffd"
    assert match_pieces([b"a", b"\xff", b"b"], []) == ("a\ufffdb", None)


def test_stop_completed_by_flushing_an_incomplete_character() -> None:
    matcher = StopMatcher(["\ufffd"])
    assert matcher.feed(b"ok\xe2") == "ok"
    assert matcher.close() == "" and matcher.stopped
    assert match_pieces([b"ok", b"\xe2"], ["\ufffd"]) == ("ok", 1)


@pytest.mark.parametrize(
    ("stops", "error", "message"),
    [
        ([""], ValueError, r"stop must hold non-empty strings, got \[''\]"),
        ([3], TypeError, r"stop must be a string or a sequence of strings, got list \[3\]"),
        (3, TypeError, "stop must be a string or a sequence of strings, got int 3"),
    ],
)
def test_bad_stop_strings_are_refused(stops: object, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        StopMatcher(stops)  # type: ignore[arg-type]


def reference(text: str, stops: list[str]) -> str:
    """Character by character: the first prefix holding a stop ends the text, cut at the
    earliest stop in that prefix."""
    for end in range(1, len(text) + 1):
        hits = [i for i in (text[:end].find(s) for s in stops) if i >= 0]
        if hits:
            return text[: min(hits)]
    return text


ALPHABET = "ab é☃\n"


@given(
    text=st.text(ALPHABET, max_size=30),
    stops=st.lists(st.text(ALPHABET, min_size=1, max_size=4), max_size=3),
    cuts=st.lists(st.integers(0, 120), max_size=10),
)
def test_any_split_into_tokens_agrees_with_the_text(
    text: str, stops: list[str], cuts: list[int]
) -> None:
    data = text.encode()
    one_byte_each = [data[i : i + 1] for i in range(len(data))]
    result, _ = match_pieces(one_byte_each, stops)
    assert result == reference(text, stops)
    bounds = sorted({0, len(data), *(c for c in cuts if c < len(data))})
    pieces = [data[a:b] for a, b in itertools.pairwise(bounds)]
    result, index = match_pieces(pieces, stops)
    assert text.startswith(result)
    assert not any(s in result for s in stops)
    assert (index is None) == (not any(s in text for s in stops))
    if index is None:
        assert result == text
