"""Token bytes -> text deltas that are safe to send: whole UTF-8 characters, no stop text.

One `TextAssembler` per generation. It is fed the bytes of each generated token and
returns only text that can no longer change:

* a character whose UTF-8 bytes are split across tokens (CJK, emoji) is held until it
  is complete, so no client ever sees a broken character;
* text that could be the start of a stop string is held until it either completes the
  stop string (then it and everything after are dropped) or stops matching (then it is
  released). Streaming and non-streaming use the same assembler, so their texts agree.

Work per token is bounded by the stop strings' lengths, never by the reply's length.
"""

from __future__ import annotations

import codecs
from collections.abc import Sequence

__all__ = ("TextAssembler",)


class TextAssembler:
    def __init__(self, stop: Sequence[str] = ()) -> None:
        """`stop`: non-empty strings (see `conversion.params.stop_strings`)."""
        self._stops = tuple(stop)
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._held = ""
        self.stopped = False
        """True once a stop string was found; later input is ignored."""
        self.matched: str | None = None
        """The stop string that was found (Anthropic's replies name it)."""

    def feed(self, piece: bytes) -> str:
        """Add one token's bytes; return the text that is now final (maybe empty)."""
        if self.stopped:
            return ""
        return self._release(self._held + self._decoder.decode(piece))

    def finish(self) -> str:
        """End of generation (EOS or a length cap): release what is still held.

        A held partial stop string did not complete, so it is real output. The first
        bytes of a character that the length cap cut off are dropped rather than shown
        as U+FFFD: the reply ends before that character.
        """
        if self.stopped:
            return ""
        text, self._held = self._held, ""
        self._decoder.reset()
        return text

    def _release(self, text: str) -> str:
        if not self._stops:
            return text
        found = [(i, s) for s in self._stops if (i := text.find(s)) >= 0]
        if found:
            cut, self.matched = min(found)
            self.stopped = True
            self._held = ""
            return text[:cut]
        keep = self._partial_stop_length(text)
        self._held = text[len(text) - keep :] if keep else ""
        return text[: len(text) - keep]

    def _partial_stop_length(self, text: str) -> int:
        """Length of the longest end of `text` that is a proper prefix of a stop string.

        Only positions holding a stop string's first character are tried, earliest
        (longest end) first, so the usual cost is a `find` or two per stop string.
        """
        longest = 0
        for stop in self._stops:
            start = text.find(stop[0], max(0, len(text) - len(stop) + 1))
            while start != -1 and len(text) - start > longest:
                if stop.startswith(text[start:]):
                    longest = len(text) - start
                    break
                start = text.find(stop[0], start + 1)
        return longest
