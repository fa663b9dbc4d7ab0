"""Request fields -> generation parameters, and what gets a 400 naming its field."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from config.settings import SamplingDefaults
from conversion.chat.requests import to_generation_params
from conversion.chat.wire import ChatCompletionRequest
from conversion.errors import ContextLengthExceededError, InvalidRequestError
from conversion.params import check_context_length, per_choice

MESSAGES = [{"role": "user", "content": "hi"}]


def request(**fields: Any) -> ChatCompletionRequest:
    return msgspec.convert({"messages": MESSAGES, **fields}, ChatCompletionRequest)


def test_openai_defaults_when_fields_are_absent() -> None:
    params = to_generation_params(request(), SamplingDefaults())
    assert params.sampling.temperature == 1.0
    assert params.sampling.top_p == 1.0
    assert params.sampling.seed is None
    assert params.max_tokens is None
    assert params.stop == ()


def test_null_fields_mean_default_too() -> None:
    params = to_generation_params(
        request(temperature=None, top_p=None, max_tokens=None, stop=None), SamplingDefaults()
    )
    assert (params.sampling.temperature, params.sampling.top_p, params.max_tokens) == (1, 1, None)


def test_configured_defaults_apply_only_when_the_request_is_silent() -> None:
    defaults = SamplingDefaults(temperature=0.2, top_p=0.9, max_tokens=50, seed=7)
    silent = to_generation_params(request(), defaults)
    assert silent.sampling == type(silent.sampling)(temperature=0.2, top_p=0.9, seed=7)
    assert silent.max_tokens == 50
    explicit = to_generation_params(
        request(temperature=0, top_p=0.5, max_tokens=3, seed=1), defaults
    )
    assert explicit.sampling == type(silent.sampling)(temperature=0, top_p=0.5, seed=1)
    assert explicit.max_tokens == 3


def test_max_completion_tokens_wins_over_max_tokens() -> None:
    params = to_generation_params(
        request(max_tokens=100, max_completion_tokens=5), SamplingDefaults()
    )
    assert params.max_tokens == 5


@pytest.mark.parametrize(
    ("stop", "expected"),
    [("END", ("END",)), (["a", "b"], ("a", "b")), (["", "x"], ("x",)), ([], ())],
)
def test_stop_string_or_list(stop: Any, expected: tuple[str, ...]) -> None:
    assert to_generation_params(request(stop=stop), SamplingDefaults()).stop == expected


def test_penalties_are_accepted_and_do_not_reach_generation() -> None:
    plain = to_generation_params(request(), SamplingDefaults())
    penalised = to_generation_params(
        request(presence_penalty=2, frequency_penalty=-2), SamplingDefaults()
    )
    assert penalised == plain


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"stream_options": {"include_usage": True}}, "stream_options"),
        ({"top_logprobs": 2}, "top_logprobs"),
        ({"logit_bias": {"50256": -101}}, "logit_bias"),
        ({"logit_bias": {"token": 5}}, "logit_bias"),
        ({"logit_bias": {"-3": 5}}, "logit_bias"),
        ({"response_format": {"type": "xml"}}, "response_format"),
        ({"response_format": {"type": "json_schema"}}, "response_format.json_schema"),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": 3}}},
            "response_format.json_schema.schema",
        ),
        ({"functions": [{"name": "f", "parameters": {}}]}, "functions"),
        ({"function_call": {"name": "f"}}, "function_call"),
        ({"modalities": ["text", "audio"]}, "modalities"),
        ({"audio": {"voice": "alloy", "format": "wav"}}, "audio"),
    ],
)
def test_unsupported_fields_are_rejected_naming_the_param(
    fields: dict[str, Any], param: str
) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        to_generation_params(request(**fields), SamplingDefaults())
    assert caught.value.param == param
    assert caught.value.status_code == 400


@pytest.mark.parametrize(
    "fields",
    [
        {"n": 1},
        {"n": 3},
        {"user": "u-1", "model": "gpt-4"},
        {"response_format": {"type": "text"}},
        {"tools": [{"type": "function"}], "tool_choice": "none"},
        {"stream": True, "stream_options": {"include_usage": True}},
        {"logprobs": False, "top_logprobs": 0, "logit_bias": {}},
        {"logit_bias": {"50256": -100, "7": 100}},
        {"modalities": ["text"], "function_call": "none", "parallel_tool_calls": True},
    ],
)
def test_harmless_values_of_those_fields_are_accepted(fields: dict[str, Any]) -> None:
    to_generation_params(request(**fields), SamplingDefaults())


def test_context_check_passes_when_the_prompt_leaves_room() -> None:
    check_context_length(prompt_tokens=99, max_tokens=1000, context_length=100)


def test_context_check_names_the_numbers() -> None:
    with pytest.raises(ContextLengthExceededError) as caught:
        check_context_length(prompt_tokens=120, max_tokens=10, context_length=100)
    error = caught.value
    assert (error.status_code, error.code, error.param) == (
        400,
        "context_length_exceeded",
        "messages",
    )
    assert "maximum context length is 100 tokens" in error.message
    assert "130 tokens (120 in the messages, 10 in the completion)" in error.message


def test_context_check_without_max_tokens() -> None:
    with pytest.raises(ContextLengthExceededError, match="resulted in 100 tokens"):
        check_context_length(prompt_tokens=100, max_tokens=None, context_length=100)


def test_logprobs_ask_for_that_many_alternatives() -> None:
    assert to_generation_params(request(), SamplingDefaults()).logprobs is None
    assert to_generation_params(request(logprobs=True), SamplingDefaults()).logprobs == 0
    asked = to_generation_params(request(logprobs=True, top_logprobs=5), SamplingDefaults())
    assert asked.logprobs == 5


def test_each_choice_gets_its_own_seed_and_the_first_is_what_n1_gets() -> None:
    params = to_generation_params(request(seed=7), SamplingDefaults())
    assert [p.sampling.seed for p in per_choice(params, 3)] == [7, 8, 9]
    unseeded = to_generation_params(request(), SamplingDefaults())
    assert [p.sampling.seed for p in per_choice(unseeded, 2)] == [None, None]
