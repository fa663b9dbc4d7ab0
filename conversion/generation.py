"""The engine's vocabulary: what one generation takes and what it yields.

Every protocol's request mapping ends in these values and every adapter starts from
the engine's events, so they are the one contract between `conversion/` and
`app/engine/`. They name no protocol: the engine imports this module and never a wire
package (`conversion.chat`, `conversion.completions`, `conversion.responses`,
`conversion.anthropic`); how a protocol frames log-probabilities or text is its own
business.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from conversion.structure import Structure

__all__ = (
    "Alternative",
    "Finished",
    "GenerationEvent",
    "GenerationParams",
    "SamplingParams",
    "TemplateMessage",
    "TextDelta",
    "ThinkingPlan",
    "TokenLogprob",
)

TemplateMessage = dict[str, Any]
"""A message as chat templates read it: `role`, `content` and, where the template
renders them, `tool_calls`, `tool_call_id`, `name` or `reasoning_content`
(`conversion.turn`)."""


@dataclass(frozen=True, slots=True)
class SamplingParams:
    temperature: float
    """0 means greedy decoding."""
    top_p: float
    seed: int | None
    """None: the engine draws a fresh random seed."""
    logit_bias: tuple[tuple[int, float], ...] = ()
    """(token id, bias added to its logit); a bias of -100 bans the token."""
    top_k: int | None = None
    """Sample among the k likeliest tokens only (Anthropic's `top_k`); None: all."""


@dataclass(frozen=True, slots=True)
class ThinkingPlan:
    """How a reasoning model's reply starts: inside its thinking (`start` None: the
    prompt opened it), or free to open it with `start` first. Until the thinking ends
    with `end`, stop strings are not looked for and a grammar is not applied: they
    are meant for the answer (a `json_schema` reply is JSON after the thinking)."""

    end: str
    start: str | None = None


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
    structure: Structure | None = None
    """The shape the reply must take (a forced call in the model's syntax, or
    `json_schema` after the family's answer prefix); wins over `json_schema`."""
    grammar: str | None = None
    """The GBNF grammar the engine built from `structure` or `json_schema`."""
    schema_param: str = "response_format.json_schema.schema"
    """The request field `json_schema` came from, named by errors about it."""
    logprobs: int | None = None
    """Report each token's log-probability with this many alternatives; None: don't."""
    thinking: ThinkingPlan | None = None
    """The reply may hold thinking before the answer (a reasoning model); None: no."""


@dataclass(frozen=True, slots=True)
class Alternative:
    piece: bytes
    """The token's bytes (may be part of a UTF-8 character)."""
    logprob: float


@dataclass(frozen=True, slots=True)
class TokenLogprob:
    """One generated token: its bytes and its log-probability under the model's own
    distribution (before temperature, top-p or biases), and the top alternatives
    (most likely first, as many as the request asked for)."""

    piece: bytes
    logprob: float
    top: tuple[Alternative, ...] = ()


@dataclass(frozen=True, slots=True)
class TextDelta:
    """Final text (whole characters, no stop-string text) generated since the last event."""

    text: str
    logprobs: tuple[TokenLogprob, ...] = ()
    """The tokens behind `text`, when the request asked for log-probabilities."""
    thinking: bool = False
    """The text is the model's thinking (with its markers), not its answer."""


@dataclass(frozen=True, slots=True)
class Finished:
    """The last event of a generation that ended normally."""

    finish_reason: Literal["stop", "length"]
    prompt_tokens: int
    completion_tokens: int
    """Tokens sampled, end-of-generation token excluded."""
    cached_tokens: int = 0
    """Prompt tokens whose KV cache was reused instead of evaluated."""
    reasoning_tokens: int = 0
    """Of `completion_tokens`, those generated while thinking."""
    stop_sequence: str | None = None
    """The stop string that ended the reply, if one did."""
    draft_tokens: int = 0
    """Tokens guessed by speculative decoding for this reply."""
    accepted_draft_tokens: int = 0
    """Of `draft_tokens`, those that stood (each saved a decode step)."""
    queued_seconds: float = 0.0
    """Time the request waited in the queue for a slot."""


GenerationEvent = TextDelta | Finished
