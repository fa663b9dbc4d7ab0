"""`POST /v1/completions` (legacy) through the openai SDK."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from tests.e2e.conftest import LiveServer

PROMPT = "The three primary colours are"


def tokens_of(live: LiveServer, text: str) -> list[int]:
    body = {"content": text, "add_special": True}
    tokens: list[int] = httpx.post(f"{live.root}/tokenize", json=body).json()["tokens"]
    return tokens


def test_a_completion_has_openais_shape_default_length_and_real_usage(
    live: LiveServer, client: openai.OpenAI
) -> None:
    reply = client.completions.create(model="m", prompt=PROMPT, temperature=0)
    assert reply.id.startswith("cmpl-")
    assert reply.object == "text_completion"
    assert reply.model == live.engine.model_id
    [choice] = reply.choices
    assert choice.index == 0
    assert choice.text
    assert choice.logprobs is None
    assert reply.usage is not None
    # OpenAI's legacy default: 16 tokens when max_tokens is absent
    assert reply.usage.completion_tokens <= 16
    assert (choice.finish_reason == "length") == (reply.usage.completion_tokens == 16)
    assert reply.usage.prompt_tokens == len(tokens_of(live, PROMPT))
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_streamed_text_and_usage_equal_the_plain_reply(client: openai.OpenAI) -> None:
    fields: dict[str, Any] = {"model": "m", "prompt": PROMPT, "max_tokens": 12, "temperature": 0}
    plain = client.completions.create(**fields)
    chunks = list(
        client.completions.create(**fields, stream=True, stream_options={"include_usage": True})
    )
    assert {c.id for c in chunks} == {chunks[0].id}
    assert all(c.object == "text_completion" for c in chunks)
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text == plain.choices[0].text
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == plain.choices[0].finish_reason
    assert all(f is None for f in finishes[:-1])
    assert chunks[-1].choices == []
    assert chunks[-1].usage == plain.usage


def test_several_prompts_with_n_each_are_numbered_prompt_major_and_echoed(
    live: LiveServer, client: openai.OpenAI
) -> None:
    prompts = ["Once upon a time", "The recipe needs"]
    reply = client.completions.create(
        model="m", prompt=prompts, n=2, max_tokens=5, echo=True, seed=4, temperature=0.9
    )
    assert [c.index for c in reply.choices] == [0, 1, 2, 3]
    for choice in reply.choices:
        assert choice.text.startswith(prompts[choice.index // 2])
    assert reply.usage is not None
    # each prompt counts once however many choices it has
    assert reply.usage.prompt_tokens == sum(len(tokens_of(live, p)) for p in prompts)


def test_a_token_array_prompt_equals_its_text(live: LiveServer, client: openai.OpenAI) -> None:
    fields: dict[str, Any] = {"model": "m", "max_tokens": 8, "temperature": 0}
    as_text = client.completions.create(prompt=PROMPT, **fields)
    as_tokens = client.completions.create(prompt=tokens_of(live, PROMPT), **fields)
    assert as_tokens.choices[0].text == as_text.choices[0].text
    assert as_tokens.usage == as_text.usage


def test_stop_strings_end_the_text_without_showing(client: openai.OpenAI) -> None:
    plain = client.completions.create(model="m", prompt=PROMPT, max_tokens=12, temperature=0)
    text = plain.choices[0].text
    stop = text.strip()[3:6]
    cut = client.completions.create(
        model="m", prompt=PROMPT, max_tokens=12, temperature=0, stop=[stop]
    )
    assert cut.choices[0].finish_reason == "stop"
    assert cut.choices[0].text == text[: text.index(stop)]


def test_legacy_logprobs_line_up_with_the_text(client: openai.OpenAI) -> None:
    reply = client.completions.create(
        model="m", prompt=PROMPT, max_tokens=6, temperature=0, logprobs=3
    )
    choice = reply.choices[0]
    logprobs = choice.logprobs
    assert logprobs is not None
    assert logprobs.tokens is not None
    assert logprobs.token_logprobs is not None
    assert logprobs.top_logprobs is not None
    assert logprobs.text_offset is not None
    assert "".join(logprobs.tokens) == choice.text
    assert len(logprobs.tokens) == len(logprobs.token_logprobs) == len(logprobs.top_logprobs)
    offsets = [0]
    for token in logprobs.tokens[:-1]:
        offsets.append(offsets[-1] + len(token))
    assert logprobs.text_offset == offsets
    for token, logprob, top in zip(
        logprobs.tokens, logprobs.token_logprobs, logprobs.top_logprobs, strict=True
    ):
        assert len(top) == 3
        assert logprob <= 0
        # greedy: the chosen token is the most likely one
        assert max(top, key=top.__getitem__) == token
        assert top[token] == pytest.approx(logprob)


def test_max_tokens_zero_with_echo_returns_the_prompt(
    live: LiveServer, client: openai.OpenAI
) -> None:
    reply = client.completions.create(model="m", prompt=PROMPT, max_tokens=0, echo=True)
    assert reply.choices[0].text == PROMPT
    assert reply.usage is not None
    assert reply.usage.completion_tokens == 0
    assert reply.usage.prompt_tokens == len(tokens_of(live, PROMPT))


async def test_the_async_client_streams_completions(live: LiveServer) -> None:
    async with live.async_client() as client:
        stream = await client.completions.create(
            model="m", prompt=PROMPT, max_tokens=5, temperature=0, stream=True
        )
        texts = [chunk.choices[0].text async for chunk in stream if chunk.choices]
    assert "".join(texts)


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"prompt": []}, "prompt"),
        ({"prompt": ["a", 5]}, "prompt"),
        ({"prompt": [999999]}, "prompt"),
        ({"prompt": [[1, 2], [999999]]}, "prompt[1]"),
        ({"prompt": "x", "suffix": "y"}, "suffix"),
        ({"prompt": "x", "best_of": 3}, "best_of"),
        ({"prompt": "x", "logprobs": 6}, "logprobs"),
        ({"prompt": "x", "logprobs": 1, "echo": True}, "logprobs"),
        ({"prompt": "x", "n": 9}, "n"),
        ({"prompt": ["x"] * 5, "n": 2}, "n"),
        ({"prompt": "x", "temperature": 3}, "temperature"),
        ({"prompt": "x", "logit_bias": {"999999": 5}}, "logit_bias"),
        ({"prompt": "x" * 20000}, "prompt"),
    ],
)
def test_bad_completion_requests_are_a_400_naming_the_field(
    client: openai.OpenAI, fields: dict[str, Any], param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.completions.create(model="m", **fields)
    assert caught.value.param == param


def test_a_streamed_echo_with_max_tokens_zero_is_still_a_stream(client: openai.OpenAI) -> None:
    chunks = list(
        client.completions.create(
            model="m",
            prompt=PROMPT,
            max_tokens=0,
            echo=True,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert "".join(c.choices[0].text for c in chunks if c.choices) == PROMPT
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 0
