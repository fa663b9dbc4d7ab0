"""A reasoning model's reply in two phases: its thinking, then its answer.

Stop strings and grammars are meant for the answer: a stop string the model happens to
think must not end the reply, and a `json_schema` grammar must let the model think
freely first, then hold its answer to the schema. So the worker follows each such
reply through its phases (`Thinking`): `undecided` while the reply could still open
its thinking (`ThinkingPlan.start`), `thinking` until the text ends with the end
marker, then the answer, which gets the request's stop strings and grammar. Text is
tagged with its phase (`TextDelta.thinking`), markers included; what clients see of
it is decided by the protocol adapters (`conversion.families`).
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass, field
from typing import Literal

from app.engine.text import TextAssembler
from conversion.generation import ThinkingPlan

__all__ = ("Thinking",)


@dataclass(slots=True)
class Thinking:
    """One reply's phase; `feed` each token's bytes until `answering`."""

    plan: ThinkingPlan
    phase: Literal["undecided", "thinking"] = "undecided"
    tokens: int = 0
    """Tokens generated in the thinking, its markers included."""
    _text: TextAssembler = field(default_factory=TextAssembler)
    _probe: bytes = b""
    _tail: str = ""

    def __post_init__(self) -> None:
        if self.plan.start is None:
            self.phase = "thinking"

    def feed(self, piece: bytes) -> tuple[str, bytes | None]:
        """One token: (thinking text now final, the bytes that begin the answer, or
        None while the reply is still thinking or undecided)."""
        self.tokens += 1
        if self.phase == "undecided":
            return self._decide(piece)
        return self._think(piece)

    def _think(self, piece: bytes) -> tuple[str, bytes | None]:
        text = self._text.feed(piece)
        seen = self._tail + text
        end = seen.find(self.plan.end)
        if end < 0:
            self._tail = seen[-len(self.plan.end) :]
            return text, None
        cut = end + len(self.plan.end) - len(self._tail)  # the end marker's end in `text`
        rest = text[cut:] + self._text.finish()
        return text[:cut], rest.encode()

    def _decide(self, piece: bytes) -> tuple[str, bytes | None]:
        start = self.plan.start or ""
        self._probe += piece
        head = codecs.decode(self._probe, "utf-8", "ignore").lstrip()
        if head.startswith(start):
            self.phase = "thinking"
            probe, self._probe = self._probe, b""
            return self._think(probe)
        if start.startswith(head):
            return "", None  # still a prefix of the start marker: wait
        answer, self._probe = self._probe, b""
        self.tokens = 0  # none of it was thinking
        return "", answer

    def finish(self) -> str:
        """The reply ended while thinking: the thinking text still held."""
        if self.phase == "undecided":
            return codecs.decode(self._probe, "utf-8", "replace")
        return self._text.finish()
