"""A generated reply, protocol-neutral: what the shared serving core hands to adapters.

Every chat-style protocol (chat completions, Responses, ...) gets a finished choice as
a `ChoiceReply`, or while streaming a sequence of `ReasoningPiece`s and `ContentPiece`s
ended by one `ChoiceEnd` per choice, and turns them into its own wire shapes. What is
thinking, content or a tool call (`conversion.families.ReplyShaper`) is decided
before, once, for all of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from conversion.generation import TokenLogprob
from conversion.tools import ParsedCall
from conversion.usage import UsagePart

__all__ = ("ChoiceEnd", "ChoiceReply", "ContentPiece", "ReasoningPiece", "TurnEvent")


@dataclass(frozen=True, slots=True)
class ChoiceReply:
    """One finished choice, ready for the wire."""

    content: str | None
    finish_reason: str
    tool_calls: Sequence[ParsedCall] = ()
    logprobs: Sequence[TokenLogprob] | None = None
    """None: not asked for."""
    reasoning: str | None = None
    """The model's thinking, without its markers; None: it did not think."""
    stop_sequence: str | None = None
    """The stop string that ended the reply, if one did."""


@dataclass(frozen=True, slots=True)
class ContentPiece:
    """Content of choice `index` that can be sent now."""

    index: int
    text: str
    logprobs: Sequence[TokenLogprob] | None = None
    """The tokens behind `text`; None: not asked for."""


@dataclass(frozen=True, slots=True)
class ChoiceEnd:
    """The end of choice `index`: its calls (if the reply was calls), why it ended, and
    its token counts. Content still held back was sent as a `ContentPiece` before."""

    index: int
    finish_reason: str
    calls: Sequence[ParsedCall] = ()
    logprobs: Sequence[TokenLogprob] | None = None
    """The tokens behind the calls; None: not asked for, or the reply was content."""
    usage: UsagePart = field(default_factory=lambda: UsagePart(0, 0, 0))
    stop_sequence: str | None = None


@dataclass(frozen=True, slots=True)
class ReasoningPiece:
    """Thinking of choice `index`, without its markers, that can be sent now."""

    index: int
    text: str


TurnEvent = ContentPiece | ReasoningPiece | ChoiceEnd
