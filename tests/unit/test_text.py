"""TextAssembler: whole UTF-8 characters only, and never any stop-string text."""

from __future__ import annotations

from app.engine.text import TextAssembler


def run(pieces: list[bytes], stop: tuple[str, ...] = ()) -> tuple[list[str], bool]:
    assembler = TextAssembler(stop)
    out = [assembler.feed(p) for p in pieces]
    stopped = assembler.stopped
    out.append(assembler.finish())
    return out, stopped


def test_multibyte_characters_split_across_tokens_are_held_until_complete() -> None:
    data = "你好🎉".encode()
    pieces = [data[i : i + 1] for i in range(len(data))]  # one byte per "token"
    out, _ = run(pieces)
    assert all("\ufffd" not in part for part in out)
    assert "".join(out) == "你好🎉"
    # the first two bytes of 你 produce nothing; the third completes it
    assert out[:3] == ["", "", "你"]


def test_stop_string_spanning_tokens_is_removed_with_everything_after() -> None:
    out, stopped = run([b"Hello wo", b"rld, and ", b"more"], stop=("world",))
    assert stopped
    assert "".join(out) == "Hello "
    assert out[0] == "Hello "  # "wo" is held back: it may start "world"


def test_partial_stop_match_is_released_when_it_stops_matching() -> None:
    out, stopped = run([b"Hello wo", b"nderful"], stop=("world",))
    assert not stopped
    assert out == ["Hello ", "wonderful", ""]


def test_held_partial_stop_is_released_at_the_end() -> None:
    out, stopped = run([b"abc wor"], stop=("world",))
    assert not stopped
    assert out == ["abc ", "wor"]


def test_earliest_of_several_stops_wins() -> None:
    out, stopped = run([b"one two three"], stop=("three", "two"))
    assert stopped
    assert "".join(out) == "one "


def test_stop_at_very_start_gives_empty_text() -> None:
    out, stopped = run([b"STOP", b"later"], stop=("STOP",))
    assert stopped
    assert "".join(out) == ""


def test_stop_containing_multibyte_characters() -> None:
    data = "答案是：四十二".encode()
    out, stopped = run([data[:4], data[4:11], data[11:]], stop=("：",))
    assert stopped
    assert "".join(out) == "答案是"


def test_input_after_a_stop_is_ignored() -> None:
    assembler = TextAssembler(("x",))
    assert assembler.feed(b"ax") == "a"
    assert assembler.feed(b"bbb") == ""
    assert assembler.finish() == ""


def test_a_character_cut_off_by_the_length_cap_is_dropped_not_broken() -> None:
    out, _ = run([b"ok ", "🌟".encode()[:2]])
    assert out == ["ok ", "", ""]


def test_invalid_bytes_inside_the_text_become_replacement_characters() -> None:
    out, _ = run([b"a\xffb"])
    assert "".join(out) == "a\ufffdb"


def test_without_stops_text_passes_straight_through() -> None:
    out, stopped = run([b"a", b"b"])
    assert out == ["a", "b", ""]
    assert not stopped


def test_the_longest_partial_match_is_held_across_overlapping_stops() -> None:
    assembler = TextAssembler(("abcabd", "bx"))
    assert assembler.feed(b"zzabcab") == "zz"  # "abcab" could still become "abcabd"
    assert assembler.feed(b"c") == "abc"  # of "abcabc", only the last "abc" may start it
    assert assembler.feed(b"abd!") == ""
    assert assembler.stopped


def test_held_text_is_bounded_by_the_stop_length() -> None:
    assembler = TextAssembler(("aaaaX",))
    out = [assembler.feed(b"a") for _ in range(10)]
    assert "".join(out) == "a" * 6  # the last four "a" are held
    assert assembler.finish() == "aaaa"
