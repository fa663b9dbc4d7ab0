"""Reasoning replies through the SDKs, on the real model with a thinking template.

The embedded model never thinks on its own, so it is served with a minimal ChatML
template written here that opens a `<think>` block in the generation prompt (as the
DeepSeek-R1 distills' and QwQ's do) and closes it when `enable_thinking` is false (as
Qwen3's does), and shows an assistant message's `reasoning_content` before it (as
Qwen3's does within a tool loop). The model then writes its reply inside the thinking
and, short replies being cut by `max_tokens`, never closes it: every token is
thinking. That exercises detection, the template variables, the engine's phases, the shaper and both
protocols' reasoning shapes; the end of thinking and the answer after it are covered
with the engine itself (tests/api/test_engine.py) and per family with fixtures
(tests/unit/test_families.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.conftest import EnginePool
from tests.e2e.conftest import LiveServer, serve

TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m.role }}\n"
    "{% if m.reasoning_content %}<think>\n{{ m.reasoning_content }}\n</think>\n\n{% endif %}"
    "{{ m.content }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% if enable_thinking is defined and not enable_thinking %}<think>\n\n</think>\n\n"
    "{% else %}<think>\n{% endif %}{% endif %}"
)
ASK = [{"role": "user", "content": "Write a long story about a dragon."}]


@pytest.fixture(scope="module")
def thinker(
    engine_pool: EnginePool, model_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    template = tmp_path_factory.mktemp("template") / "think.jinja"
    template.write_text(TEMPLATE)
    yield from serve(engine_pool, model_path, model={"chat_template_file": str(template)})


@pytest.fixture
def client(thinker: LiveServer) -> Iterator[openai.OpenAI]:
    with thinker.client() as c:
        yield c


def ask(client: openai.OpenAI, **extra: Any) -> Any:
    return client.chat.completions.create(
        model="m", messages=ASK, temperature=0, max_tokens=extra.pop("max_tokens", 10), **extra
    )


def test_the_thinking_is_reasoning_content_and_counted(client: openai.OpenAI) -> None:
    reply = ask(client)
    message = reply.choices[0].message
    thought = message.reasoning_content  # type: ignore[attr-defined]
    assert thought
    assert message.reasoning == thought  # type: ignore[attr-defined]
    assert "<think>" not in thought
    assert message.content == ""  # cut off while thinking: nothing was answered yet
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage is not None
    assert reply.usage.completion_tokens == 10
    assert reply.usage.completion_tokens_details is not None
    assert reply.usage.completion_tokens_details.reasoning_tokens == 10

    chunks = list(ask(client, stream=True, stream_options={"include_usage": True}))
    streamed = "".join(
        getattr(c.choices[0].delta, "reasoning_content", None) or "" for c in chunks if c.choices
    )
    assert streamed == thought
    assert not any(c.choices[0].delta.content for c in chunks if c.choices)
    assert chunks[-1].usage == reply.usage


@pytest.mark.parametrize(
    "switch",
    [
        {"reasoning_effort": "none"},
        {"extra_body": {"chat_template_kwargs": {"enable_thinking": False}}},
    ],
)
def test_thinking_can_be_turned_off_per_request(
    client: openai.OpenAI, switch: dict[str, Any]
) -> None:
    reply = ask(client, max_tokens=16, **switch)
    message = reply.choices[0].message
    assert message.content
    assert getattr(message, "reasoning_content", None) is None
    assert reply.usage is not None
    assert reply.usage.completion_tokens_details is not None
    assert reply.usage.completion_tokens_details.reasoning_tokens == 0


def test_reserved_template_variables_are_refused(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        ask(client, extra_body={"chat_template_kwargs": {"add_generation_prompt": False}})
    assert caught.value.param == "chat_template_kwargs.add_generation_prompt"  # type: ignore[attr-defined]


def test_the_responses_api_puts_the_thinking_in_a_reasoning_item(client: openai.OpenAI) -> None:
    response = client.responses.create(
        model="m", input=ASK[0]["content"], max_output_tokens=10, temperature=0
    )
    [reasoning, message] = response.output
    assert reasoning.type == "reasoning"
    assert reasoning.id.startswith("rs_")
    [text] = reasoning.content or []
    assert text.text
    assert message.type == "message"
    assert response.output_text == ""
    assert response.usage is not None
    assert response.usage.output_tokens_details.reasoning_tokens == 10

    with client.responses.stream(
        model="m", input=ASK[0]["content"], max_output_tokens=10, temperature=0
    ) as stream:
        kinds = [event.type for event in stream]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.reasoning_text.delta",
    ]
    assert "response.reasoning_text.done" in kinds
    assert kinds[-1] == "response.incomplete"
    off = client.responses.create(
        model="m", input=ASK[0]["content"], max_output_tokens=16, reasoning={"effort": "none"}
    )
    assert [item.type for item in off.output] == ["message"]
    assert off.output_text


def test_a_stateless_client_sends_its_sealed_reasoning_back(client: openai.OpenAI) -> None:
    """`store: false` with `include: ["reasoning.encrypted_content"]`: the thinking comes
    sealed, goes back in the next request's input, and reaches the prompt; an edited
    seal is refused."""
    stateless: dict[str, Any] = {
        "model": "m",
        "input": ASK[0]["content"],
        "max_output_tokens": 10,
        "temperature": 0,
        "store": False,
        "include": ["reasoning.encrypted_content"],
    }
    first = client.responses.create(**stateless)
    reasoning = first.output[0]
    assert reasoning.type == "reasoning"
    sealed = reasoning.encrypted_content
    assert sealed
    assert (reasoning.content or [])[0].text not in sealed
    answer = {"role": "assistant", "content": "Once upon a time."}
    then = {"role": "user", "content": "Go on."}
    only_sealed = {"type": "reasoning", "summary": [], "encrypted_content": sealed}

    def read(items: list[Any]) -> int:
        reply = client.responses.create(model="m", input=items, max_output_tokens=1, store=False)
        assert reply.usage is not None
        return reply.usage.input_tokens

    assert read([ASK[0], only_sealed, answer, then]) > read([ASK[0], answer, then])
    edited = {
        **only_sealed,
        "encrypted_content": sealed[:12] + ("A" if sealed[12] != "A" else "B") + sealed[13:],
    }
    with pytest.raises(openai.BadRequestError) as caught:
        read([ASK[0], edited, answer, then])
    assert caught.value.param == "input[1].encrypted_content"  # type: ignore[attr-defined]

    with client.responses.stream(**stateless) as stream:
        last = list(stream)[-1]
    assert last.type == "response.incomplete"  # cut by max_output_tokens, as above
    final = last.response
    assert final.output[0].type == "reasoning"
    assert final.output[0].encrypted_content == sealed  # the same thinking, the same seal
