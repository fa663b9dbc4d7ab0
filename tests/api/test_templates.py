"""Chat template choices: the GGUF's own, a Jinja file, a built-in format; and their errors."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from app.main import create_app
from config import ModelSettings, Settings, SettingsError
from tests.api.conftest import started_client
from tests.api.test_chat_api import HELLO, assert_error
from tests.conftest import TEST_THREADS

STRICT_CHATML = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ raise_exception('system messages are not supported') }}"
    "{% endif %}"
    "{% if loop.index0 % 2 != (0 if message['role'] == 'user' else 1) %}"
    "{{ raise_exception('roles must alternate user/assistant') }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def settings_with(model_path: Path, **model: object) -> Settings:
    return Settings(
        model=ModelSettings(path=str(model_path), n_ctx=512, n_threads=TEST_THREADS, **model)  # type: ignore[arg-type]
    )


async def test_a_jinja_template_file_is_used_and_its_errors_are_400(
    model_path: Path, tmp_path: Path
) -> None:
    template = tmp_path / "strict.jinja"
    template.write_text(STRICT_CHATML)
    default_app = create_app(settings_with(model_path))
    custom_app = create_app(settings_with(model_path, chat_template_file=str(template)))
    request = {"messages": HELLO, "max_tokens": 1}
    async with started_client(default_app) as default, started_client(custom_app) as custom:
        with_system = (await default.post("/v1/chat/completions", json=request)).json()
        without = (await custom.post("/v1/chat/completions", json=request)).json()
        # the GGUF template adds a default system prompt; this one does not
        assert without["usage"]["prompt_tokens"] < with_system["usage"]["prompt_tokens"]
        twice = [*HELLO, *HELLO]
        response = await custom.post("/v1/chat/completions", json={"messages": twice})
        error = assert_error(response, 400, param="messages")
        assert "roles must alternate" in error["message"]
        # it refuses system messages, so their text opens the first user message
        system = [{"role": "system", "content": "Be brief."}, *HELLO]
        folded = [{"role": "user", "content": "Be brief.\n\nHello!"}]
        counts = []
        for messages in (system, folded):
            response = await custom.post(
                "/v1/chat/completions", json={"messages": messages, "max_tokens": 1}
            )
            assert response.status_code == 200
            counts.append(response.json()["usage"]["prompt_tokens"])
        assert counts[0] == counts[1] > without["usage"]["prompt_tokens"]


TOOLS_CHATML = (
    "{% if tools %}{{ '<|im_start|>system\\nTools:' }}"
    "{% for tool in tools %}{{ ' ' + tool.function.name }}{% endfor %}{{ '<|im_end|>\\n' }}"
    "{% endif %}{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] }}"
    "{% for call in message.tool_calls or [] %}"
    "{% if call.function.arguments is string %}{{ raise_exception('arguments not parsed') }}"
    "{% endif %}{{ call.function.name + ' ' + call.function.arguments.city }}{% endfor %}"
    "{{ '<|im_end|>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


async def test_a_template_that_knows_tools_renders_them_and_earlier_calls_itself(
    model_path: Path, tmp_path: Path
) -> None:
    template = tmp_path / "tools.jinja"
    template.write_text(TOOLS_CHATML)
    app = create_app(settings_with(model_path, chat_template_file=str(template)))
    weather = {"type": "function", "function": {"name": "get_weather"}}
    call = {
        "id": "c1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
    }
    history = [
        *HELLO,
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
    ]
    async with started_client(app) as client:
        plain = await client.post(
            "/v1/chat/completions", json={"messages": history, "max_tokens": 1}
        )
        with_tools = await client.post(
            "/v1/chat/completions",
            json={"messages": history, "max_tokens": 1, "tools": [weather]},
        )
        assert plain.status_code == with_tools.status_code == 200, with_tools.text
        # the template's own "Tools: get_weather" line, not our system-prompt text
        extra = with_tools.json()["usage"]["prompt_tokens"] - plain.json()["usage"]["prompt_tokens"]
        assert 0 < extra < 20


async def test_a_built_in_chat_format_can_be_named(model_path: Path) -> None:
    app = create_app(settings_with(model_path, chat_format="chatml"))
    async with started_client(app) as client:
        response = await client.post(
            "/v1/chat/completions", json={"messages": HELLO, "max_tokens": 2}
        )
        assert response.status_code == 200
        tokens = (await client.post("/tokenize", json={"messages": HELLO})).json()["tokens"]
        assert response.json()["usage"]["prompt_tokens"] == len(tokens)
        prompt = (await client.post("/detokenize", json={"tokens": tokens})).json()["content"]
        # llama-cpp-python's ChatML layout, not the GGUF template's (whose default
        # system prompt introduces "SmolLM")
        assert "<|im_start|>user\nHello!<|im_end|>" in prompt
        assert prompt.endswith("<|im_start|>assistant\n")
        assert "SmolLM" not in prompt
        # llama-cpp-python's chatml keeps only a leading system message: a later one's
        # text joins it rather than vanishing
        later = [
            {"role": "system", "content": "Be brief."},
            *HELLO,
            {"role": "assistant", "content": "Hi."},
            {"role": "system", "content": "Answer in French."},
            *HELLO,
        ]
        tokens = (await client.post("/tokenize", json={"messages": later})).json()["tokens"]
        prompt = (await client.post("/detokenize", json={"tokens": tokens})).json()["content"]
        assert "<|im_start|>system\nBe brief.\n\nAnswer in French.<|im_end|>" in prompt


@pytest.mark.parametrize(
    ("model", "name"),
    [
        ({"chat_format": "no-such-format"}, "model.chat_format"),
        ({"chat_template_file": "/no/such/file.jinja"}, "model.chat_template_file"),
        ({"chat_template_file": "BROKEN"}, "model.chat_template_file"),
    ],
)
def test_an_unusable_template_setting_fails_at_start_up(
    model_path: Path, tmp_path: Path, model: dict[str, str], name: str
) -> None:
    if model.get("chat_template_file") == "BROKEN":
        broken = tmp_path / "broken.jinja"
        broken.write_text("{% for message in messages %}")  # never closed
        model = {"chat_template_file": str(broken)}
    with pytest.raises(SettingsError, match=name.replace(".", r"\.")):
        create_app(settings_with(model_path, **model))


async def test_unknown_fields_are_logged_at_debug_level(
    model_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(settings_with(model_path))
    requests_log = logging.getLogger("llm_service.requests")
    requests_log.addHandler(caplog.handler)  # the app's logging config replaced root's
    try:
        async with started_client(app) as client:
            with caplog.at_level(logging.DEBUG, logger="llm_service.requests"):
                response = await client.post(
                    "/v1/chat/completions",
                    json={"messages": HELLO, "max_tokens": 1, "frobnicate": True, "store": False},
                )
    finally:
        requests_log.removeHandler(caplog.handler)
    assert response.status_code == 200
    assert any("frobnicate" in r.getMessage() and "store" in r.getMessage() for r in caplog.records)
