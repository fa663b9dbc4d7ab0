"""A turn's prompt: checked, rendered with the model's chat template and tokenized, one
way for every protocol and for every count.

`start_turn` submits what `turn_prompt` renders; `/tokenize` and Anthropic's
count_tokens count the same prompt, after the same checks, so a count is what the
request would read: the template-ready messages and tools
(`conversion.turn.template_inputs`), the template variables of its reasoning settings
and `chat_template_kwargs`, and the thinking block a structured reply opens in the
prompt. Only whether it leaves room for the reply is the generation's question, not
the count's: a client counts to find out.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import anyio

from app.engine.base import ChatPrompt, Engine
from config.settings import Settings
from conversion.errors import ContextLengthExceededError, InvalidRequestError
from conversion.families import thinking_state
from conversion.generation import GenerationParams, ThinkingPlan
from conversion.params import check_context_length
from conversion.turn import (
    Turn,
    TurnMessage,
    merged_system_messages,
    structured_params,
    template_inputs,
    turn_variables,
)

__all__ = ("TurnPrompt", "turn_prompt")


@dataclass(frozen=True, slots=True)
class TurnPrompt:
    prompt: ChatPrompt
    params: GenerationParams
    """The params to generate with: the template's stop strings added, and how the
    reply's thinking starts (`GenerationParams.thinking`)."""
    dropped: int = 0
    """Leading messages dropped to make the prompt fit (with `Turn.truncate`)."""


Render = Callable[[Sequence[TurnMessage], str], ChatPrompt]


def _renderer(engine: Engine, turn: Turn, default_effort: str | None) -> Render:
    """Messages (the turn's, or fewer of them) and a suffix -> the tokenized prompt."""
    native, family = engine.renders_tools, engine.family
    variables = turn_variables(turn, family, default_effort)

    def render_as_is(messages: Sequence[TurnMessage], suffix: str) -> ChatPrompt:
        rendered, tools = template_inputs(messages, turn.plan, native_tools=native, family=family)
        return engine.tokenize_chat(rendered, tools, variables, suffix)

    def render(messages: Sequence[TurnMessage], suffix: str) -> ChatPrompt:
        """System messages stay where they are where the template takes them there;
        a template that refuses them (roles must alternate) gets them merged into the
        leading one."""
        try:
            return render_as_is(messages, suffix)
        except InvalidRequestError:
            merged = merged_system_messages(messages)
            if merged is None:
                raise
            return render_as_is(merged, suffix)

    return render


async def _prompt(
    render: Render, engine: Engine, turn: Turn, params: GenerationParams, fit: bool, suffix: str
) -> tuple[ChatPrompt, int]:
    """The tokenized prompt, and how many leading messages were dropped to fit it."""
    prompt = await anyio.to_thread.run_sync(render, turn.messages, suffix)
    if not prompt.tokens:
        raise InvalidRequestError(
            "The chat template renders these messages as an empty prompt.",
            param=turn.messages_param,
        )
    if not fit:
        return prompt, 0
    if not turn.truncate:
        check_context_length(
            len(prompt.tokens), params.max_tokens, engine.context_length, turn.messages_param
        )
        return prompt, 0
    return await _truncated(render, engine.context_length, turn, params, prompt, suffix)


async def turn_prompt(
    engine: Engine, turn: Turn, settings: Settings, *, fit: bool = True
) -> TurnPrompt:
    """Check `turn`'s params (grammars for a structured reply or a forced call, token
    ids the vocabulary must have) and render and tokenize its prompt, in worker
    threads. `fit`: refuse a prompt that leaves no room for the reply, or drop its
    oldest messages when the turn asks for that; a count does neither.

    A reply that must match a grammar and may or may not think gets its thinking
    opened in the prompt, as templates that force thinking do: the grammar then waits
    for its end."""
    family = engine.family
    structured = structured_params(turn, family)
    params = await anyio.to_thread.run_sync(engine.check_params, structured)
    render = _renderer(engine, turn, settings.model.reasoning_effort)
    prompt, dropped = await _prompt(render, engine, turn, params, fit, "")
    markers, state = family.thinking, thinking_state(family, prompt.text)
    thinking = None
    if markers is not None and state not in (None, "closed"):
        if state == "free" and (params.structure or params.json_schema) is not None:
            prompt, dropped = await _prompt(render, engine, turn, params, fit, markers.start)
            state = "open"
        thinking = ThinkingPlan(markers.end, markers.start if state == "free" else None)
    params = dataclasses.replace(params, thinking=thinking, stop=params.stop + prompt.stop)
    return TurnPrompt(prompt, params, dropped)


def _fits(prompt: ChatPrompt, params: GenerationParams, context: int) -> bool:
    """Room for the prompt and the reply; the reply's share is capped at a quarter of
    the context, so a large `max_output_tokens` cannot empty the conversation."""
    room = min(params.max_tokens or 1, max(1, context // 4))
    return len(prompt.tokens) + room <= context


async def _truncated(
    render: Render,
    context: int,
    turn: Turn,
    params: GenerationParams,
    prompt: ChatPrompt,
    suffix: str,
) -> tuple[ChatPrompt, int]:
    """Drop whole messages from the start of the conversation (never a leading system
    message, never the last message, and never a tool result without its call) until
    the prompt fits, as OpenAI documents `truncation: "auto"`. Binary search: the
    prompt only shrinks as more is dropped."""
    if _fits(prompt, params, context):
        return prompt, 0
    messages = turn.messages
    keep = 1 if messages and messages[0].role == "system" else 0
    cuts = _cut_points(messages, keep)
    best: tuple[ChatPrompt, int] | None = None
    low, high = 0, len(cuts) - 1
    while low <= high:
        middle = (low + high) // 2
        dropped = cuts[middle]
        candidate = await anyio.to_thread.run_sync(
            render, messages[:keep] + messages[keep + dropped :], suffix
        )
        if _fits(candidate, params, context):
            best, high = (candidate, dropped), middle - 1
        else:
            low = middle + 1
    if best is None:
        raise ContextLengthExceededError(
            f"This model's maximum context length is {context} tokens, and the last "
            "message alone does not fit with room for a reply.",
            param=turn.messages_param,
        )
    return best


def _cut_points(messages: Sequence[TurnMessage], keep: int) -> list[int]:
    """How many messages after the first `keep` may be dropped: counts that leave the
    last message, and that do not start the rest with a tool result."""
    return [
        dropped
        for dropped in range(1, len(messages) - keep)
        if messages[keep + dropped].role != "tool"
    ]
