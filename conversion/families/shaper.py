"""One reply, as it streams in, split into reasoning, content and tool calls.

The engine tags each piece of text as thinking or answer (`TextDelta.thinking`) and
keeps the family's markers in it. The shaper, one per choice, turns that into what
clients see: the thinking without its markers and surrounding blank space as reasoning
(or, with `reasoning_format: none`, left in the content as the model wrote it); the
answer without the family's structural prefix; and calls read in the family's syntax.
It holds back only what could still be a marker or the start of a call, so content and
reasoning stream as they come, and a streamed reply joins up to the non-streamed one.
"""

from __future__ import annotations

from collections.abc import Sequence

from conversion.families.family import Family
from conversion.tools import ParsedCall, ToolPlan

__all__ = ("ReplyShaper",)


def _partial_suffix(text: str, markers: Sequence[str]) -> int:
    """Length of the longest end of `text` that is a proper prefix of a marker."""
    longest = 0
    for marker in markers:
        for size in range(min(len(marker) - 1, len(text)), longest, -1):
            if marker.startswith(text[-size:]):
                longest = size
                break
    return longest


class _Reasoning:
    """The thinking text: its start marker and leading space dropped; its end marker
    and trailing space held back until it is clear they end it."""

    def __init__(self, start: str, end: str) -> None:
        self._start, self._end = start, end
        self._begun = False
        self._held = ""

    def feed(self, text: str) -> str:
        text = self._held + text
        self._held = ""
        if not self._begun:
            stripped = text.lstrip()
            if not stripped or (self._start.startswith(stripped) and stripped != self._start):
                self._held = text  # nothing yet, or maybe the start marker
                return ""
            text = stripped.removeprefix(self._start).lstrip()
            self._begun = bool(text)
            if not text:
                return ""
        keep = _partial_suffix(text, (self._end,))
        if text.endswith(self._end):
            keep = len(self._end)
        body = text[: len(text) - keep]
        tail = body[len(body.rstrip()) :]
        self._held = tail + text[len(text) - keep :]
        return body[: len(body) - len(tail)]

    def close(self) -> None:
        """The thinking is over: drop what was held (the end marker, blank space)."""
        held, self._held = self._held, ""
        rest = held.strip().removesuffix(self._end).strip()
        self._held = rest  # a held piece that was no marker after all

    def take(self) -> str:
        held, self._held = self._held, ""
        return held

    def cut(self) -> str:
        """The reply ended inside the thinking: the held text, unless it is blank or
        the beginning of the end marker."""
        held = self.take().rstrip()
        return "" if self._end.startswith(held.strip()) else held


class ReplyShaper:
    def __init__(self, family: Family, plan: ToolPlan | None, separate_reasoning: bool = True):
        self._family = family
        self._syntax = family.tools
        self._functions = plan.allowed if plan else ()
        self._names = [f.name for f in self._functions]
        self._forced = plan is not None and plan.mode == "required"
        self._calls = plan is not None
        thinking = family.thinking
        self._reasoning = (
            _Reasoning(thinking.start, thinking.end) if separate_reasoning and thinking else None
        )
        self._thought = False
        self._answer_started = False
        self._head = ""
        """Answer text held while it could still be the family's answer prefix."""
        self._holding = self._forced
        self._held = ""
        """Content from a call opener on (when holding), or a tail that could begin one."""
        self._sent = False

    # --- answer ----------------------------------------------------------------------

    def _strip_prefix(self, text: str) -> str | None:
        """The answer without its structural prefix; None while that is undecided."""
        head = self._head + text
        if self._reasoning is not None:
            head = head.lstrip()  # the blank lines between thinking and answer
        for prefix in self._family.answer_prefixes:
            if prefix.startswith(head) and head != prefix:
                self._head = head
                return None
            if head.startswith(prefix):
                head = head[len(prefix) :]
                break
        if not head and self._reasoning is not None:
            self._head = ""
            return None
        self._head = ""
        self._answer_started = True
        return head

    def _answer(self, text: str) -> str:
        """Answer text -> content that can be sent now (calls are held)."""
        if not self._answer_started:
            stripped = self._strip_prefix(text)
            if stripped is None:
                return ""
            text = stripped
        if not self._calls:
            return text
        if self._holding:
            self._held += text
            return ""
        text, self._held = self._held + text, ""
        opener = self._find_opener(text)
        if opener >= 0:
            self._holding = True
            self._held = text[opener:]
            return text[:opener]
        keep = _partial_suffix(text, self._syntax.openers)
        if self._syntax.bare_json and not self._sent and not text.strip():
            keep = len(text)  # the reply may still open with `{`
        self._held = text[len(text) - keep :] if keep else ""
        sent = text[: len(text) - keep]
        self._sent = self._sent or bool(sent.strip())
        return sent

    def _find_opener(self, text: str) -> int:
        found = [i for i in (text.find(o) for o in self._syntax.openers) if i >= 0]
        if self._syntax.bare_json and not self._sent and text.lstrip().startswith("{"):
            found.append(len(text) - len(text.lstrip()))
        return min(found, default=-1)

    # --- the interface ---------------------------------------------------------------

    def feed(self, text: str, thinking: bool = False) -> tuple[str, str]:
        """A piece of the reply -> (reasoning, content) that can be sent now."""
        if thinking and self._reasoning is not None:
            self._thought = True
            return self._reasoning.feed(text), ""
        reasoning = ""
        if self._thought:
            self._thought = False
            assert self._reasoning is not None
            self._reasoning.close()
            reasoning = self._reasoning.take()
        if thinking:  # reasoning_format none: the thinking is content, as written
            return reasoning, text
        return reasoning, self._answer(text)

    def finish(self, finish_reason: str) -> tuple[str, str, list[ParsedCall], str]:
        """End of the reply: (reasoning and content not sent yet, calls, finish_reason).

        A reply cut off while it was writing a call it was free to make is content,
        with `finish_reason: "length"`, not a broken call. A forced call cut off is
        still a call, its arguments cut short, as OpenAI returns it.
        """
        reasoning = ""
        if self._reasoning is not None:
            reasoning = self._reasoning.cut() if self._thought else self._reasoning.take()
        content, self._head = self._head, ""
        held, self._held = self._held, ""
        if not self._holding or not held.strip():
            return reasoning, content + held, [], finish_reason
        calls = self._syntax.parse(held, self._functions)
        if calls is None and self._forced and finish_reason == "length":
            calls = self._syntax.cut_call(held, self._names)
        if calls is None:
            return reasoning, content + held, [], finish_reason
        reason = "tool_calls" if finish_reason == "stop" else finish_reason
        return reasoning, content, calls, reason
