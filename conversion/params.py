"""Helpers the protocols share when they map a request onto `GenerationParams`.

Each protocol maps its own request onto the engine's `GenerationParams`
(`conversion.generation`): `conversion.chat.requests`, `conversion.completions.mapping`,
`conversion.responses.requests`, `conversion.anthropic.requests`; the helpers here are
the parts they share. A field is either honoured, accepted and documented as ignored,
or rejected with a 400 naming it. Defaults: the request's value, else the server's
configured default, else OpenAI's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Protocol

from config.settings import SamplingDefaults
from conversion.errors import ContextLengthExceededError, InvalidRequestError
from conversion.generation import GenerationParams, SamplingParams

__all__ = (
    "check_context_length",
    "per_choice",
    "sampling_params",
    "stop_strings",
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
