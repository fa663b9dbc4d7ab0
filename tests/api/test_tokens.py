"""`/tokenize` and `/detokenize` with the real model."""

from __future__ import annotations

from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.api.conftest import ClientFactory
from tests.api.test_chat_api import assert_error
from tests.e2e.test_reasoning_sdk import TEMPLATE as THINKING_OPENED

Client = AsyncTestClient[Litestar]
CHAT: list[Any] = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Héllo, 世界! How many tokens is this?"},
]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
ANSWER = {
    "type": "json_schema",
    "json_schema": {
        "name": "answer",
        "schema": {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]},
    },
}
PROMPT_FIELDS: dict[str, dict[str, Any]] = {
    "plain": {},
    "tools": {"tools": [WEATHER]},
    "tools, none chosen": {"tools": [WEATHER], "tool_choice": "none"},
    "tools, required": {"tools": [WEATHER], "tool_choice": "required"},
    "tools, one named": {
        "tools": [WEATHER],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
    },
    "no reasoning": {"reasoning_effort": "none"},
    "template kwargs": {"chat_template_kwargs": {"enable_thinking": False}},
    "json schema": {"response_format": ANSWER},
    "json object": {"response_format": {"type": "json_object"}},
    "an unknown field": {"tools": [WEATHER], "not_a_field": {"x": 1}},
}
"""Chat request fields that may change the prompt, each case sent to `/tokenize` and to
the chat route: the count must be the chat reply's `usage.prompt_tokens`."""

THINKING_TOOLS = (
    "{% if tools %}<|im_start|>system\nTools:{% for t in tools %} {{ t.function.name }}"
    "{% endfor %}<|im_end|>\n{% endif %}"
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}"
    "{% for c in m.tool_calls or [] %}<tool_call>{{ c.function.name }}</tool_call>{% endfor %}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% if enable_thinking is defined and not enable_thinking %}<think>\n\n</think>\n\n"
    "{% endif %}{% endif %}"
)
"""A Qwen3-like template: it lays out tools itself, and its reply may open `<think>`
(closed in the prompt when `enable_thinking` is false)."""


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Model settings per template: the embedded model's own (no tools, no thinking),
    the Qwen3-like one above, and a DeepSeek-R1-like one (tools described in the
    system message by the server, thinking opened in the prompt unless turned off)."""
    folder = tmp_path_factory.mktemp("templates")
    chosen: dict[str, dict[str, Any]] = {"own": {}}
    for name, source in (("thinking, native tools", THINKING_TOOLS), ("thinking", THINKING_OPENED)):
        path = folder / f"{len(chosen)}.jinja"
        path.write_text(source)
        chosen[name] = {"chat_template_file": str(path)}
    return chosen


async def _count_and_usage(client: Client, fields: dict[str, Any]) -> tuple[int, int]:
    counted = await client.post("/tokenize", json={"messages": CHAT, **fields})
    assert counted.status_code == 200, counted.text
    body = counted.json()
    assert body["count"] == len(body["tokens"])
    chat = await client.post(
        "/v1/chat/completions", json={"messages": CHAT, "max_tokens": 1, **fields}
    )
    assert chat.status_code == 200, chat.text
    return body["count"], chat.json()["usage"]["prompt_tokens"]


@pytest.mark.parametrize("template", ["own", "thinking, native tools", "thinking"])
async def test_tokenize_counts_what_the_chat_request_reads(
    client_for: ClientFactory, templates: dict[str, dict[str, Any]], template: str
) -> None:
    counts = {}
    async with client_for(model=templates[template]) as client:
        for case, fields in PROMPT_FIELDS.items():
            count, usage = await _count_and_usage(client, fields)
            assert count == usage, case
            counts[case] = count
    # the fields did change the prompt: tools described by the server or by the
    # template, thinking switched off in the prompt, a structured reply's thinking
    # opened in it
    assert counts["tools"] > counts["plain"], counts
    assert counts["tools, none chosen"] == counts["plain"], counts
    if template != "own":
        assert counts["no reasoning"] > counts["plain"], counts
        assert counts["template kwargs"] == counts["no reasoning"], counts
    if template == "thinking, native tools":
        assert counts["json schema"] > counts["plain"], counts


async def test_tokenize_refuses_a_bad_chat_field_as_the_chat_route_does(client: Client) -> None:
    for fields, param in (
        ({"tools": [{"type": "function"}]}, "tools[0].function.name"),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"reasoning_effort": "extreme"}, "reasoning_effort"),
        ({"chat_template_kwargs": {"messages": []}}, "chat_template_kwargs.messages"),
        ({"logit_bias": {"99999999": 1}}, "logit_bias"),  # only the model knows its vocabulary
    ):
        counted = await client.post("/tokenize", json={"messages": CHAT, **fields})
        chat = await client.post("/v1/chat/completions", json={"messages": CHAT, **fields})
        assert assert_error(counted, 400, param=param) == assert_error(chat, 400, param=param)


async def test_tokenized_messages_count_like_the_chat_prompt(client: Client) -> None:
    counted = (await client.post("/tokenize", json={"messages": CHAT})).json()
    assert counted["count"] == len(counted["tokens"])
    chat = await client.post("/v1/chat/completions", json={"messages": CHAT, "max_tokens": 1})
    assert counted["count"] == chat.json()["usage"]["prompt_tokens"]
    assert counted["model"] == chat.json()["model"]


async def test_content_round_trips_through_detokenize(client: Client) -> None:
    text = "Héllo, 世界! 🙂 <|im_start|> tokens"
    tokens = (await client.post("/tokenize", json={"content": text})).json()["tokens"]
    with_bos = (await client.post("/tokenize", json={"content": text, "add_special": True})).json()
    assert len(with_bos["tokens"]) >= len(tokens)
    back = (await client.post("/detokenize", json={"tokens": tokens})).json()
    assert back["content"] == text


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/tokenize", {}, "content"),
        ("/tokenize", {"content": "a", "messages": CHAT}, "content"),
        ("/tokenize", {"messages": []}, "messages"),
        ("/detokenize", {"tokens": [1, 10**9]}, "tokens[1]"),
        ("/detokenize", {"tokens": [-5]}, "tokens[0]"),
        ("/detokenize", {"tokens": "abc"}, "tokens"),
    ],
)
async def test_bad_token_requests_are_400_naming_the_field(
    client: Client, path: str, body: dict[str, Any], param: str
) -> None:
    assert_error(await client.post(path, json=body), 400, param=param)


async def test_token_helpers_need_the_api_key_when_keys_are_set(client_for: ClientFactory) -> None:
    async with client_for(api_keys=["k"]) as client:
        assert (await client.post("/tokenize", json={"content": "a"})).status_code == 401
        ok = await client.post(
            "/detokenize", json={"tokens": [1]}, headers={"Authorization": "Bearer k"}
        )
        assert ok.status_code == 200
