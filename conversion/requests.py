"""OpenAI request fields -> what the engine needs: sampling, a token cap, stop strings.

A field is either honoured, accepted and documented as ignored, or rejected with a 400
naming it. Nothing is silently dropped in a way that changes what the client expects.
Defaults: the request's value, else the server's configured default, else OpenAI's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from config.settings import SamplingDefaults
from conversion.errors import ContextLengthExceededError, InvalidRequestError
from conversion.json_schema import check_schema
from conversion.wire import ChatCompletionRequest

__all__ = (
    "GenerationParams",
    "SamplingParams",
    "check_context_length",
    "per_choice",
    "sampling_params",
    "stop_strings",
    "to_generation_params",
)


@dataclass(frozen=True, slots=True)
class SamplingParams:
    temperature: float
    """0 means greedy decoding."""
    top_p: float
    seed: int | None
    """None: the engine draws a fresh random seed."""
    logit_bias: tuple[tuple[int, float], ...] = ()
    """(token id, bias added to its logit); a bias of -100 bans the token."""


@dataclass(frozen=True, slots=True)
class GenerationParams:
    sampling: SamplingParams
    max_tokens: int | None
    """Completion cap; None = until the model stops or the context is full."""
    stop: tuple[str, ...]
    time_limit: float | None = None
    """Seconds the request may take, queueing included; then it ends as `length`."""
    json_schema: dict[str, Any] | None = None
    """Constrain the reply to JSON matching this schema."""
    grammar: str | None = None
    """The GBNF grammar the engine built from `json_schema`."""
    schema_param: str = "response_format.json_schema.schema"
    """The request field `json_schema` came from, named by errors about it."""
    logprobs: int | None = None
    """Report each token's log-probability with this many alternatives; None: don't."""


def _reject_unsupported(req: ChatCompletionRequest) -> None:
    """Refuse, with a 400 naming the field, what this server cannot do.

    Ignoring these silently would hand clients something other than what they asked
    for (legacy function calling, audio, log-probabilities nobody asked to turn on).
    """
    if req.stream_options is not None and not req.stream:
        raise InvalidRequestError(
            "stream_options is only allowed when stream is true.", param="stream_options"
        )
    if req.top_logprobs and not req.logprobs:
        raise InvalidRequestError("top_logprobs needs logprobs to be true.", param="top_logprobs")
    if req.functions:
        raise InvalidRequestError(
            "functions (the legacy form of tools) are not supported; send `tools`.",
            param="functions",
        )
    if req.function_call not in (None, "none", "auto"):
        raise InvalidRequestError(
            "function_call (the legacy form of tool_choice) is not supported; send `tool_choice`.",
            param="function_call",
        )
    if req.audio is not None or (req.modalities and set(req.modalities) != {"text"}):
        raise InvalidRequestError(
            "Audio output is not supported: this server generates text only.",
            param="audio" if req.audio is not None else "modalities",
        )


def to_generation_params(
    req: ChatCompletionRequest, defaults: SamplingDefaults
) -> GenerationParams:
    """Validate the request's generation fields and resolve their defaults.

    `presence_penalty` and `frequency_penalty` are range-checked by the schema and then
    deliberately not used: they must not change the output (documented in the README).
    """
    _reject_unsupported(req)
    if req.max_completion_tokens is not None:
        max_tokens: int | None = req.max_completion_tokens
    elif req.max_tokens is not None:
        max_tokens = req.max_tokens
    else:
        max_tokens = defaults.max_tokens
    return GenerationParams(
        sampling=sampling_params(req, defaults),
        max_tokens=max_tokens,
        stop=stop_strings(req.stop),
        json_schema=_json_schema(req.response_format),
        logprobs=(req.top_logprobs or 0) if req.logprobs else None,
    )


class _SamplingFields(Protocol):
    temperature: float | None
    top_p: float | None
    seed: int | None
    logit_bias: dict[str, float] | None


def sampling_params(req: _SamplingFields, defaults: SamplingDefaults) -> SamplingParams:
    """The sampling fields chat and legacy completions share, defaults resolved."""
    return SamplingParams(
        temperature=defaults.temperature if req.temperature is None else req.temperature,
        top_p=defaults.top_p if req.top_p is None else req.top_p,
        seed=defaults.seed if req.seed is None else req.seed,
        logit_bias=_logit_bias(req.logit_bias),
    )


def per_choice(params: GenerationParams, n: int) -> list[GenerationParams]:
    """Parameters for each of `n` choices. With a seed, choice i samples with seed + i:
    the choices differ from each other, yet the same request gives the same choices
    again (choice 0 is what n=1 gives)."""
    seed = params.sampling.seed
    if n == 1 or seed is None:
        return [params] * n
    return [
        dataclasses.replace(params, sampling=dataclasses.replace(params.sampling, seed=seed + i))
        for i in range(n)
    ]


def _json_schema(response_format: dict[str, Any] | None) -> dict[str, Any] | None:
    """OpenAI's `response_format` -> the JSON schema replies must match, or None.

    `json_object` means any JSON object (`{"type": "object"}`); `json_schema` carries
    its own schema. The engine turns the schema into a llama.cpp grammar.
    """
    kind = (response_format or {}).get("type", "text")
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "object"}
    if kind == "json_schema":
        spec = (response_format or {}).get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise InvalidRequestError(
                "response_format json_schema needs a `json_schema` object with a `name`.",
                param="response_format.json_schema",
            )
        schema = spec.get("schema", {"type": "object"})
        if not isinstance(schema, dict):
            raise InvalidRequestError(
                "response_format json_schema.schema must be a JSON schema object.",
                param="response_format.json_schema.schema",
            )
        check_schema(
            schema, "response_format.json_schema.schema", strict=spec.get("strict") is True
        )
        return schema
    raise InvalidRequestError(
        f"response_format type {kind!r} is not supported; use 'text', 'json_object' or "
        "'json_schema'.",
        param="response_format",
    )


def _logit_bias(bias: dict[str, float] | None) -> tuple[tuple[int, float], ...]:
    """OpenAI's `{"token id": bias}` with biases in [-100, 100] -> sorted pairs.

    Token ids are checked against the vocabulary by the engine, which knows its size.
    """
    pairs = []
    for key, value in (bias or {}).items():
        if not key.isdigit() or not -100 <= value <= 100:
            raise InvalidRequestError(
                f"Invalid logit_bias entry {key!r}: {value!r}; keys must be token ids and "
                "values between -100 and 100.",
                param="logit_bias",
            )
        pairs.append((int(key), float(value)))
    return tuple(sorted(pairs))


def stop_strings(stop: str | Sequence[str] | None) -> tuple[str, ...]:
    """A stop string or list of them (as OpenAI and chat formats give it) -> a tuple,
    without empty strings (which would match at once and end every reply empty)."""
    listed = (stop,) if isinstance(stop, str) else tuple(stop or ())
    return tuple(s for s in listed if s)


def check_context_length(
    prompt_tokens: int, max_tokens: int | None, context_length: int, param: str = "messages"
) -> None:
    """Refuse a prompt that leaves no room to generate, before any stream starts.

    A prompt that fits but leaves less room than `max_tokens` is served: generation
    then ends at the context limit with `finish_reason: "length"`.
    """
    if prompt_tokens < context_length:
        return
    if max_tokens is None:
        detail = f"However, your {param} resulted in {prompt_tokens} tokens"
    else:
        detail = (
            f"However, you requested {prompt_tokens + max_tokens} tokens "
            f"({prompt_tokens} in the {param}, {max_tokens} in the completion)"
        )
    raise ContextLengthExceededError(
        f"This model's maximum context length is {context_length} tokens. {detail}. "
        f"Please reduce the length of the {param} or completion.",
        param=param,
    )
