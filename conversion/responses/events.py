"""A streamed turn -> the Responses API's typed events, in OpenAI's order.

`response.created` and `response.in_progress` first; a reasoning model's thinking in a
`reasoning` item (`response.reasoning_text.delta` events); for text, the message item is
added, then its `output_text` part, then the deltas, and each is closed in reverse;
for calls, each `function_call` item is added with empty arguments, gets its
arguments, and is closed. The last event is `response.completed` (or
`response.incomplete` when the reply was cut short, or `response.failed`) carrying
the whole response, output and usage included: the openai SDK's stream helper takes
its final response from there. Every event has the next `sequence_number`.
"""

from __future__ import annotations

from collections.abc import Iterator

from conversion.errors import OpenAIError
from conversion.generation import TokenLogprob
from conversion.logprobs import token_entries
from conversion.reply import ChoiceEnd, ContentPiece, ReasoningPiece, TurnEvent
from conversion.responses.items import new_id
from conversion.responses.output import (
    ItemStatus,
    ResponseDraft,
    call_item,
    item_status,
    message_item,
    reasoning_item,
)
from conversion.responses.wire import (
    ArgumentsDelta,
    ArgumentsDone,
    ContentPartAdded,
    ContentPartDone,
    CustomInputDelta,
    CustomInputDone,
    CustomToolCallItem,
    OutputItem,
    OutputItemAdded,
    OutputItemDone,
    OutputText,
    OutputTextDelta,
    OutputTextDone,
    ReasoningTextDelta,
    ReasoningTextDone,
    Response,
    ResponseCompleted,
    ResponseCreated,
    ResponseFailed,
    ResponseIncomplete,
    ResponseInProgress,
    StreamEvent,
)
from conversion.tools import ParsedCall
from conversion.usage import combined_usage

__all__ = ("ResponseEvents",)


class ResponseEvents:
    """The events of one streamed response; `final` is the response once it ended."""

    def __init__(self, draft: ResponseDraft) -> None:
        self._draft = draft
        self._sequence = 0
        self._output: list[OutputItem] = []
        self._message_id: str | None = None
        self._reasoning_id: str | None = None
        self._thought: list[str] = []
        self._text: list[str] = []
        self._logprobs: list[TokenLogprob] = []
        self.final: Response | None = None

    def _numbered(self, *events: StreamEvent) -> Iterator[StreamEvent]:
        for event in events:
            event.sequence_number = self._sequence
            self._sequence += 1
            yield event

    def start(self) -> Iterator[StreamEvent]:
        response = self._draft.response([])
        yield from self._numbered(
            ResponseCreated(response=response), ResponseInProgress(response=response)
        )

    def feed(self, event: TurnEvent) -> Iterator[StreamEvent]:
        if isinstance(event, ReasoningPiece):
            yield from self._reason(event.text)
            return
        if isinstance(event, ContentPiece):
            yield from self._close_reasoning("completed")
            yield from self._open_message()
            self._text.append(event.text)
            self._logprobs.extend(event.logprobs or ())
            yield from self._numbered(
                OutputTextDelta(
                    item_id=self._message_id or "",
                    output_index=len(self._output),
                    delta=event.text,
                    logprobs=token_entries(event.logprobs or ()),
                )
            )
            return
        yield from self._end(event)

    def _reason(self, text: str) -> Iterator[StreamEvent]:
        """Thinking streams in a `reasoning` item before the message."""
        index = len(self._output)
        if self._reasoning_id is None:
            self._reasoning_id = new_id("rs")
            item = reasoning_item(self._reasoning_id, "", "in_progress")
            item.content = []
            yield from self._numbered(OutputItemAdded(output_index=index, item=item))
        self._thought.append(text)
        yield from self._numbered(
            ReasoningTextDelta(item_id=self._reasoning_id, output_index=index, delta=text)
        )

    def _close_reasoning(self, status: ItemStatus) -> Iterator[StreamEvent]:
        if self._reasoning_id is None:
            return
        text, index = "".join(self._thought), len(self._output)
        item = reasoning_item(self._reasoning_id, text, status, self._draft.seal_key)
        self._reasoning_id = None
        yield from self._numbered(
            ReasoningTextDone(item_id=item.id, output_index=index, text=text),
            OutputItemDone(output_index=index, item=item),
        )
        self._output.append(item)

    def _open_message(self) -> Iterator[StreamEvent]:
        if self._message_id is not None:
            return
        self._message_id = new_id("msg")
        item = message_item(self._message_id, "", None, "in_progress")
        item.content = []
        yield from self._numbered(
            OutputItemAdded(output_index=len(self._output), item=item),
            ContentPartAdded(
                item_id=self._message_id, output_index=len(self._output), part=OutputText(text="")
            ),
        )

    def _end(self, end: ChoiceEnd) -> Iterator[StreamEvent]:
        status = item_status(end.finish_reason)
        thinking_only = not (end.calls or self._message_id)
        yield from self._close_reasoning(status if thinking_only else "completed")
        if not end.calls:
            yield from self._open_message()  # an empty reply is still one message
        if self._message_id is not None:
            text, index = "".join(self._text), len(self._output)
            item = message_item(self._message_id, text, self._logprobs, status)
            part = item.content[0]
            yield from self._numbered(
                OutputTextDone(
                    item_id=item.id, output_index=index, text=text, logprobs=part.logprobs
                ),
                ContentPartDone(item_id=item.id, output_index=index, part=part),
                OutputItemDone(output_index=index, item=item),
            )
            self._output.append(item)
        for call in end.calls:
            yield from self._call(call, status)
        usage = combined_usage([end.usage])
        self.final = self._draft.response(
            list(self._output), finish_reason=end.finish_reason, usage=usage
        )
        closing = ResponseIncomplete if self.final.status == "incomplete" else ResponseCompleted
        yield from self._numbered(closing(response=self.final))

    def _call(self, call: ParsedCall, status: ItemStatus) -> Iterator[StreamEvent]:
        """A call's item added with an empty input, its input in one delta, then done."""
        done = call_item(call, status, self._draft.tools)
        added = call_item(call, "in_progress", self._draft.tools, announced=True)
        added.id, added.call_id = done.id, done.call_id
        index = len(self._output)
        body: tuple[StreamEvent, ...]
        if isinstance(done, CustomToolCallItem):
            body = (
                CustomInputDelta(item_id=done.id, output_index=index, delta=done.input),
                CustomInputDone(item_id=done.id, output_index=index, input=done.input),
            )
        else:
            body = (
                ArgumentsDelta(item_id=done.id, output_index=index, delta=done.arguments),
                ArgumentsDone(
                    item_id=done.id, output_index=index, name=done.name, arguments=done.arguments
                ),
            )
        yield from self._numbered(
            OutputItemAdded(output_index=index, item=added),
            *body,
            OutputItemDone(output_index=index, item=done),
        )
        self._output.append(done)

    def fail(self, error: OpenAIError) -> Iterator[StreamEvent]:
        """The stream broke after it started: the response ends `failed`."""
        self.final = self._draft.response(list(self._output), error=error)
        yield from self._numbered(ResponseFailed(response=self.final))
