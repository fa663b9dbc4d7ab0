"""One chat-style turn on the engine, whatever the protocol: the core every adapter shares.

An adapter (chat completions, the Responses API, ...) maps its request onto a
`ChatTurn`: messages in the chat template's form, generation params, a tool plan, how
many choices. From there the work is the same for all of them and lives only here:
grammars for structured replies and forced calls, the chat template (tools rendered by
the template or described in the system message), tokenizing, the context-length check
(or dropping the oldest messages, for protocols that ask for it), submitting the
choices together, prompt logging, metrics, cancellation when the client leaves, and
deciding what of the reply is content and what is a tool call. The adapter gets back
`conversion.reply` values and frames them in its own wire shapes.

Everything that can fail because of the request fails in `start_turn`, before the
response starts, so it gets a real 4xx/503 status; once a stream has started,
failures go in-band, framed by the adapter.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import anyio
from litestar import Request

from app.access_log import request_stats
from app.engine.base import ChatPrompt, Engine, TextDelta
from app.metrics import Metrics, RequestStats
from app.serving.fanout import ChoiceResult, Fanout, IndexedEvent, submit_all, usage_part
from app.serving.stream import collect_all, first_then_rest
from config.settings import ModelSettings, Settings
from conversion.errors import ContextLengthExceededError, InvalidRequestError
from conversion.families import Family, ReplyShaper, template_variables, thinking_state
from conversion.logprobs import TokenLogprob
from conversion.params import GenerationParams, ThinkingPlan, check_context_length, per_choice
from conversion.reply import ChoiceEnd, ChoiceReply, ContentPiece, ReasoningPiece, TurnEvent
from conversion.structure import Structure
from conversion.tools import ToolPlan, tool_instructions
from conversion.usage import UsagePart, combined_usage
from conversion.wire import Usage

__all__ = ("ChatTurn", "StartedTurn", "count_prompt_tokens", "start_turn")

prompt_log = logging.getLogger("llm_service.prompts")

Messages = list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class ChatTurn:
    """What a chat-style request asks of the engine, once its adapter has mapped it."""

    messages: Messages
    """In the chat template's form (`conversion.chat.messages.to_template_messages`)."""
    params: GenerationParams
    plan: ToolPlan | None = None
    choices: int = 1
    truncate: bool = False
    """Drop the oldest messages until the prompt fits (the Responses API's
    `truncation: "auto"`); otherwise a prompt that does not fit is a 400."""
    messages_param: str = "messages"
    """The request field the messages came from, named by errors about them."""
    schema_conflict_param: str = "response_format"
    """The field to name when a structured reply is asked for with a forced call."""
    log_text: Callable[[], str] | None = None
    """The request's messages for `server.log_prompts`, rendered only when logged."""
    reasoning_effort: str | None = None
    """The request's effort (`none` turns a model's thinking off); None: the server's."""
    template_kwargs: dict[str, Any] | None = None
    """The request's own template variables (`chat_template_kwargs`)."""


@dataclass(slots=True)
class StartedTurn:
    """A turn whose choices are queued. Read it once: `replies()` or `events()`."""

    request: Request[Any, Any, Any]
    fanout: Fanout
    plan: ToolPlan | None
    family: Family
    separate_reasoning: bool
    count: int
    logprobs: bool
    stats: RequestStats | None
    metrics: Metrics | None
    prompt_tokens: int
    dropped: int
    """Leading messages dropped to make the prompt fit (with `truncate`)."""
    parts: list[UsagePart] = field(default_factory=list)
    """Each choice's token counts, once `replies()` has them."""

    async def replies(self) -> tuple[list[ChoiceReply], Usage]:
        """Every choice, whole, and the request's usage (for a JSON reply); each
        choice's own counts are then in `parts`."""
        results = await collect_all(self.request, self.fanout, self.stats, self.metrics)
        self.parts = [usage_part(r.finished) for r in results if r.finished]
        return [self._reply(r) for r in results], combined_usage(self.parts)

    async def events(self) -> AsyncIterator[TurnEvent]:
        """The choices' content as it can be sent, then each one's end. Waits for the
        first event, so a turn that fails to start still fails before the stream."""
        return self._shaped(
            await first_then_rest(self.request, self.fanout, self.stats, self.metrics)
        )

    def cancel(self) -> None:
        self.fanout.cancel()

    def _shaper(self) -> ReplyShaper:
        return ReplyShaper(self.family, self.plan, self.separate_reasoning)

    def _reply(self, result: ChoiceResult) -> ChoiceReply:
        assert result.finished is not None
        shaper = self._shaper()
        reasoning, content = [], []
        for text, thinking in result.pieces:
            think, said = shaper.feed(text, thinking)
            reasoning.append(think)
            content.append(said)
        think, rest, calls, finish_reason = shaper.finish(result.finished.finish_reason)
        thinks = result.finished.reasoning_tokens and self.separate_reasoning
        thought = "".join([*reasoning, think]) if thinks else None
        tokens = result.logprobs if self.logprobs else None
        matched = result.finished.stop_sequence
        if calls:
            before = "".join(content) or None  # text the reply had before its calls
            return ChoiceReply(before, finish_reason, calls, tokens, thought, matched)
        text = "".join([*content, rest])
        return ChoiceReply(text, finish_reason, (), tokens, thought, matched)

    async def _shaped(self, events: AsyncIterator[IndexedEvent]) -> AsyncIterator[TurnEvent]:
        shapers = [self._shaper() for _ in range(self.count)]
        held: list[list[TokenLogprob]] = [[] for _ in range(self.count)]
        async for index, item in events:
            if isinstance(item, TextDelta):
                held[index].extend(item.logprobs)
                think, said = shapers[index].feed(item.text, item.thinking)
                if think:
                    yield ReasoningPiece(index, think)
                if said:
                    yield ContentPiece(index, said, held[index] if self.logprobs else None)
                    held[index] = []
                continue
            think, rest, calls, finish_reason = shapers[index].finish(item.finish_reason)
            tokens = held[index] if self.logprobs else None
            if think:
                yield ReasoningPiece(index, think)
            if rest or (tokens and not calls):
                yield ContentPiece(index, rest, None if calls else tokens)
            yield ChoiceEnd(
                index,
                finish_reason,
                calls,
                tokens if calls else None,
                usage_part(item),
                item.stop_sequence,
            )


def _structured(turn: ChatTurn, family: Family) -> GenerationParams:
    """A forced call is the call in the family's syntax; a structured answer is JSON
    after the family's answer prefix. Both become a `Structure` the engine enforces."""
    params, plan = turn.params, turn.plan
    if plan is not None and plan.mode == "required":
        if params.json_schema is not None:
            raise InvalidRequestError(
                f"{turn.schema_conflict_param} cannot ask for structured output together "
                "with a required tool call.",
                param=turn.schema_conflict_param,
            )
        return dataclasses.replace(params, structure=family.tools.forced(plan))
    if params.json_schema is not None and family.answer_prefix:
        answer = Structure.json(params.json_schema, params.schema_param, family.answer_prefix)
        return dataclasses.replace(params, structure=answer)
    return params


def _template_inputs(
    messages: Messages, plan: ToolPlan | None, native: bool, family: Family
) -> tuple[Messages, list[dict[str, Any]] | None]:
    """Messages and tools for the chat template: a template that renders tools gets
    them as they are; otherwise they are described in the system message."""
    if plan is None:
        return messages, None
    if native:
        return messages, [{"type": "function", "function": _tool_dict(f)} for f in plan.functions]
    example = family.tools.write("<function name>", "<arguments object>")
    instructions = tool_instructions(plan, example)
    messages = list(messages)
    if messages and messages[0]["role"] == "system":
        messages[0] = {**messages[0], "content": f"{messages[0]['content']}\n\n{instructions}"}
    else:
        messages.insert(0, {"role": "system", "content": instructions})
    return messages, None


def _tool_dict(function: Any) -> dict[str, Any]:
    spec = asdict(function)
    return {key: spec[key] for key in ("name", "description", "parameters")}


async def _prompt(
    engine: Engine,
    turn: ChatTurn,
    params: GenerationParams,
    variables: dict[str, Any],
    suffix: str = "",
) -> tuple[ChatPrompt, int]:
    """The tokenized prompt, and how many leading messages were dropped to fit it."""
    native, family = engine.renders_tools, engine.family

    def render(messages: Messages) -> ChatPrompt:
        rendered, tools = _template_inputs(messages, turn.plan, native, family)
        return engine.tokenize_chat(rendered, tools, variables, suffix)

    prompt = await anyio.to_thread.run_sync(render, turn.messages)
    if not prompt.tokens:
        raise InvalidRequestError(
            "The chat template renders these messages as an empty prompt.",
            param=turn.messages_param,
        )
    if not turn.truncate:
        check_context_length(
            len(prompt.tokens), params.max_tokens, engine.context_length, turn.messages_param
        )
        return prompt, 0
    return await _truncated(engine, turn, params, prompt, render)


async def _thinking_prompt(
    engine: Engine, turn: ChatTurn, params: GenerationParams, variables: dict[str, Any]
) -> tuple[ChatPrompt, int, ThinkingPlan | None]:
    """The prompt, and how the reply's thinking starts (see `ThinkingPlan`). A reply
    that must match a grammar and may or may not think gets its thinking opened in the
    prompt, as templates that force thinking do: the grammar then waits for its end."""
    family = engine.family
    prompt, dropped = await _prompt(engine, turn, params, variables)
    state = thinking_state(family, prompt.text)
    if family.thinking is None or state in (None, "closed"):
        return prompt, dropped, None
    if state == "free" and (params.structure or params.json_schema) is not None:
        prompt, dropped = await _prompt(engine, turn, params, variables, family.thinking.start)
        state = "open"
    start = family.thinking.start if state == "free" else None
    return prompt, dropped, ThinkingPlan(family.thinking.end, start)


def _fits(prompt: ChatPrompt, params: GenerationParams, context: int) -> bool:
    """Room for the prompt and the reply; the reply's share is capped at a quarter of
    the context, so a large `max_output_tokens` cannot empty the conversation."""
    room = min(params.max_tokens or 1, max(1, context // 4))
    return len(prompt.tokens) + room <= context


async def _truncated(
    engine: Engine,
    turn: ChatTurn,
    params: GenerationParams,
    prompt: ChatPrompt,
    render: Callable[[Messages], ChatPrompt],
) -> tuple[ChatPrompt, int]:
    """Drop whole messages from the start of the conversation (never a leading system
    message, never the last message, and never a tool result without its call) until
    the prompt fits, as OpenAI documents `truncation: "auto"`. Binary search: the
    prompt only shrinks as more is dropped."""
    context = engine.context_length
    if _fits(prompt, params, context):
        return prompt, 0
    messages = turn.messages
    keep = 1 if messages and messages[0]["role"] == "system" else 0
    cuts = _cut_points(messages, keep)
    best: tuple[ChatPrompt, int] | None = None
    low, high = 0, len(cuts) - 1
    while low <= high:
        middle = (low + high) // 2
        dropped = cuts[middle]
        candidate = await anyio.to_thread.run_sync(
            render, messages[:keep] + messages[keep + dropped :]
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


def _cut_points(messages: Sequence[dict[str, Any]], keep: int) -> list[int]:
    """How many messages after the first `keep` may be dropped: counts that leave the
    last message, and that do not start the rest with a tool result."""
    points = []
    for dropped in range(1, len(messages) - keep):
        if messages[keep + dropped]["role"] != "tool":
            points.append(dropped)
    return points


def _variables(turn: ChatTurn, family: Family, settings: ModelSettings) -> dict[str, Any]:
    effort = turn.reasoning_effort or settings.reasoning_effort
    return template_variables(family, effort, turn.template_kwargs)


async def start_turn(
    request: Request[Any, Any, Any],
    turn: ChatTurn,
    engine: Engine,
    settings: Settings,
    metrics: Metrics | None = None,
) -> StartedTurn:
    """Check, render, tokenize and queue the turn's choices (see the module docstring)."""
    family = engine.family
    params = await anyio.to_thread.run_sync(engine.check_params, _structured(turn, family))
    variables = _variables(turn, family, settings.model)
    prompt, dropped, thinking = await _thinking_prompt(engine, turn, params, variables)
    params = dataclasses.replace(params, thinking=thinking, stop=params.stop + prompt.stop)
    fanout = submit_all(engine, [(prompt.tokens, p) for p in per_choice(params, turn.choices)])
    stats = request_stats(request.scope)
    if settings.server.log_prompts and turn.log_text is not None:
        prompt_log.info(
            "request_id=%s messages=%s", stats.request_id if stats else "-", turn.log_text()
        )
    return StartedTurn(
        request=request,
        fanout=fanout,
        plan=turn.plan,
        family=family,
        separate_reasoning=settings.model.reasoning_format != "none",
        count=turn.choices,
        logprobs=params.logprobs is not None,
        stats=stats,
        metrics=metrics,
        prompt_tokens=len(prompt.tokens),
        dropped=dropped,
    )


async def count_prompt_tokens(turn: ChatTurn, engine: Engine, settings: Settings) -> int:
    """The prompt tokens `start_turn` would give the same turn (Anthropic's
    `count_tokens`): the same template, tools, variables and thinking."""
    family = engine.family
    params = _structured(turn, family)
    variables = _variables(turn, family, settings.model)
    prompt, _, _ = await _thinking_prompt(engine, turn, params, variables)
    return len(prompt.tokens)
