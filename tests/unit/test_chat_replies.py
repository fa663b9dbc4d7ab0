"""Response and chunk shapes, checked on the encoded JSON a client receives."""

from __future__ import annotations

import msgspec
import pytest

from conversion.chat.replies import ChunkFactory, to_chat_completion
from conversion.reply import ChoiceReply
from conversion.usage import reported_cached_tokens, to_usage

NO_DETAILS = {
    "reasoning_tokens": 0,
    "audio_tokens": 0,
    "accepted_prediction_tokens": 0,
    "rejected_prediction_tokens": 0,
}


def encoded(obj: object) -> dict:  # type: ignore[type-arg]
    return msgspec.json.decode(msgspec.json.encode(obj))


def test_usage_total_is_the_sum_and_cached_tokens_are_detailed() -> None:
    assert encoded(to_usage(2000, 5, 1500)) == {
        "prompt_tokens": 2000,
        "completion_tokens": 5,
        "total_tokens": 2005,
        "prompt_tokens_details": {"cached_tokens": 1408},
        "completion_tokens_details": NO_DETAILS,
    }


@pytest.mark.parametrize(
    ("prompt", "reused", "reported"),
    [(7, 6, 0), (1023, 1000, 0), (1024, 127, 0), (1024, 128, 128), (1500, 1499, 1408)],
)
def test_cached_tokens_are_counted_as_openai_does(prompt: int, reused: int, reported: int) -> None:
    assert reported_cached_tokens(prompt, reused) == reported


def test_chat_completion_shape() -> None:
    body = encoded(
        to_chat_completion(model="m", choices=[ChoiceReply("hi", "stop")], usage=to_usage(3, 1))
    )
    assert body["id"].startswith("chatcmpl-")
    assert body["object"] == "chat.completion"
    assert isinstance(body["created"], int)
    assert body["model"] == "m"
    assert body["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "hi", "refusal": None},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ]
    assert body["usage"]["total_tokens"] == 4


def test_stream_chunks_share_id_and_created_and_follow_openai_order() -> None:
    factory = ChunkFactory("m")
    chunks = [
        encoded(c)
        for c in (
            factory.role(),
            factory.content("a"),
            factory.content("b"),
            factory.finish("length"),
        )
    ]
    assert {c["id"] for c in chunks} == {factory.id}
    assert {c["created"] for c in chunks} == {factory.created}
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert [c["choices"][0]["delta"] for c in chunks[1:3]] == [{"content": "a"}, {"content": "b"}]
    assert chunks[-1]["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "length",
    }
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1])
    assert all("usage" not in c for c in chunks)  # not asked for: not present at all


def test_with_include_usage_every_chunk_has_null_usage_until_the_last() -> None:
    factory = ChunkFactory("m", include_usage=True)
    role, finish = encoded(factory.role()), encoded(factory.finish("stop"))
    last = encoded(factory.usage(to_usage(2, 1)))
    assert role["usage"] is None
    assert finish["usage"] is None
    assert last["choices"] == []
    assert last["usage"] == {
        "prompt_tokens": 2,
        "completion_tokens": 1,
        "total_tokens": 3,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": NO_DETAILS,
    }
    assert last["id"] == role["id"]
