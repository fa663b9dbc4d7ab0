"""Log-probabilities in OpenAI's chat and legacy shapes."""

from __future__ import annotations

import msgspec

from conversion.chat.replies import to_chat_logprobs
from conversion.completions.mapping import to_completion_logprobs
from conversion.generation import Alternative, TokenLogprob

TOKENS = [
    TokenLogprob(b"Hi", -0.5, (Alternative(b"Hi", -0.5), Alternative(b"Hello", -1.5))),
    TokenLogprob(b"\xe4\xbd", -2.0, (Alternative(b"\xe4\xbd", -2.0),)),
]


def test_chat_shape_has_token_bytes_and_alternatives() -> None:
    body = msgspec.to_builtins(to_chat_logprobs(TOKENS))
    assert body["refusal"] is None
    first, second = body["content"]
    assert first == {
        "token": "Hi",
        "logprob": -0.5,
        "bytes": [72, 105],
        "top_logprobs": [
            {"token": "Hi", "logprob": -0.5, "bytes": [72, 105]},
            {"token": "Hello", "logprob": -1.5, "bytes": [72, 101, 108, 108, 111]},
        ],
    }
    # half a character: the exact bytes, and escaped text rather than U+FFFD
    assert second["bytes"] == [0xE4, 0xBD]
    assert second["token"] == "\\xe4\\xbd"


def test_legacy_shape_has_parallel_lists_and_offsets() -> None:
    body = msgspec.to_builtins(to_completion_logprobs(TOKENS, offset=10))
    assert body["tokens"] == ["Hi", "\\xe4\\xbd"]
    assert body["token_logprobs"] == [-0.5, -2.0]
    assert body["top_logprobs"] == [{"Hi": -0.5, "Hello": -1.5}, {"\\xe4\\xbd": -2.0}]
    assert body["text_offset"] == [10, 12]


def test_legacy_offsets_count_characters_not_escapes() -> None:
    # "あ" is three bytes split over two tokens, then "b": the text is "あb"
    split = [TokenLogprob(b"\xe3\x81", -1.0), TokenLogprob(b"\x82", -1.0), TokenLogprob(b"b", -1.0)]
    assert to_completion_logprobs(split, offset=0).text_offset == [0, 0, 1]
