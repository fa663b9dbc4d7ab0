"""A model family: how its chat template shows it, how it thinks, how it writes calls."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from conversion.errors import InvalidRequestError
from conversion.families.syntax import ToolSyntax

__all__ = (
    "EFFORTS",
    "RESERVED_VARIABLES",
    "Family",
    "ThinkingMarkers",
    "request_variables",
    "template_variables",
    "thinking_state",
)

EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")
"""OpenAI's `reasoning_effort` values."""
_HARMONY_EFFORT = {"none": "low", "minimal": "low", "xhigh": "high"}
RESERVED_VARIABLES = frozenset(
    {
        "messages",
        "tools",
        "add_generation_prompt",
        "bos_token",
        "eos_token",
        "raise_exception",
        "functions",
        "function_call",
        "tool_choice",
        "strftime_now",
    }
)
"""Template variables the server sets itself; `chat_template_kwargs` cannot."""


@dataclass(frozen=True, slots=True)
class ThinkingMarkers:
    start: str
    """Text that opens the thinking (e.g. `<think>`)."""
    end: str
    """Text that closes it; the answer follows."""


@dataclass(frozen=True, slots=True)
class Family:
    name: str
    """As the README's table and the start-up log name it."""
    tools: ToolSyntax = field(default_factory=ToolSyntax)
    thinking: ThinkingMarkers | None = None
    markers: tuple[str, ...] = ()
    """Special tokens whose text the engine keeps in replies so they can be read
    (call openers, channel headers); other special tokens stay invisible."""
    answer_prefixes: tuple[str, ...] = ()
    """Structural text an answer may start with, not shown as content."""
    answer_prefix: str = ""
    """What a constrained answer (a `json_schema` reply) is made to start with."""
    thinking_switch: Callable[[bool], dict[str, Any]] | None = None
    """Template variables that turn the thinking on or off, e.g. Qwen3's
    `enable_thinking`; None: it cannot be switched."""
    effort_variable: str | None = None
    """The template variable that takes `reasoning_effort` as it is (gpt-oss)."""
    detected_by: str = "the fallback"
    """What in the template identified the family (for the log)."""


def thinking_state(family: Family, prompt: str) -> Literal["open", "closed", "free"] | None:
    """Where a rendered prompt leaves the reply: inside the thinking (the template
    opened it), past it (the template closed it: thinking off), or free to open it;
    None for a family that does not think."""
    markers = family.thinking
    if markers is None:
        return None
    tail = prompt.rstrip()
    opened, closed = tail.rfind(markers.start), tail.rfind(markers.end)
    if opened > closed and not tail[opened + len(markers.start) :].strip():
        return "open"
    if closed >= 0 and closed > opened and not tail[closed + len(markers.end) :].strip():
        return "closed"
    return "free"


def template_variables(
    family: Family, effort: str | None, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The variables a request's reasoning settings give the chat template: the
    family's switch (on unless the effort is `none`; some templates close the thinking
    when it is left undefined, so it is always set), or its effort variable (gpt-oss:
    low, medium or high); then the request's own `chat_template_kwargs`, which win."""
    variables: dict[str, Any] = {}
    if family.effort_variable is not None and effort is not None:
        variables[family.effort_variable] = _HARMONY_EFFORT.get(effort, effort)
    elif family.thinking_switch is not None:
        variables.update(family.thinking_switch(effort != "none"))
    return {**variables, **(extra or {})}


def request_variables(kwargs: Any, param: str = "chat_template_kwargs") -> dict[str, Any] | None:
    """A request's `chat_template_kwargs`, checked: variables the server sets itself
    (`messages`, `tools`, `add_generation_prompt`, ...) cannot be replaced."""
    if kwargs is None:
        return None
    if not isinstance(kwargs, dict):
        raise InvalidRequestError("chat_template_kwargs must be an object.", param=param)
    for key in kwargs:
        if key in RESERVED_VARIABLES:
            raise InvalidRequestError(
                f"The template variable {key!r} is set by the server.", param=f"{param}.{key}"
            )
    return dict(kwargs)
