"""The "edit" scenario of `bench.py`: a passage handed back with one small change.

Each client sends a passage of about 400 tokens -- prose, or code -- and asks for it
back with one word changed, greedy, with `max_tokens` large enough for all of it. Such
replies repeat their input, which is what speculative decoding from n-grams (guesses
taken from the prompt) is for; the chat sweep is the control where guesses rarely hold.
Each client sends the prose, then the code, then the prose again (each request a new
conversation; the server may reuse the cached prompt of the same passage).
"""

from __future__ import annotations

import httpx
from bench_load import Message, RequestResult, Target, closed_loop

__all__ = ("CODE", "PROSE", "draft_counts", "edit", "edit_prompt")

PROSE = """\
The lighthouse on the northern cliff was built in 1821 by a stonemason from the valley,
who carried every block up the narrow path on the back of a grey mule. For two hundred
years its keepers climbed the spiral stairs at dusk, trimmed the wick, wound the clockwork
that turned the lens, and wrote the weather in a leather book that still sits on the desk
by the window. Fishermen coming home in the fog counted the seconds between the flashes
to know which headland they were passing, and the children of the village learned the
rhythm before they learned to read. In the winter of 1893 a storm tore the roof from the
keeper's cottage and the sea reached the first landing of the tower, but the light did
not go out: the keeper's daughter kept it burning for three nights while her father lay
ill with fever, carrying oil up the stairs in a copper jug. When electricity came to the
coast in 1952, the clockwork was replaced by a motor and the keepers by a timer, and the
leather book was closed. Today the tower is a museum. Visitors climb the same stairs,
look through the same lens, and read in the keeper's neat hand how many ships passed on
the night of the great storm, and how many came home.
"""

CODE = """\
import json
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Inventory:
    \"\"\"Items in a warehouse, counted by name, saved as JSON.\"\"\"

    path: Path
    counts: dict[str, int] = field(default_factory=dict)

    def load(self) -> None:
        if self.path.exists():
            self.counts = json.loads(self.path.read_text())

    def save(self) -> None:
        self.path.write_text(json.dumps(self.counts, indent=2, sort_keys=True))

    def add(self, name: str, quantity: int = 1) -> int:
        if quantity <= 0:
            raise ValueError(f"quantity must be positive, not {quantity}")
        self.counts[name] = self.counts.get(name, 0) + quantity
        return self.counts[name]

    def remove(self, name: str, quantity: int = 1) -> int:
        have = self.counts.get(name, 0)
        if quantity > have:
            raise ValueError(f"only {have} of {name} in stock")
        self.counts[name] = have - quantity
        if self.counts[name] == 0:
            del self.counts[name]
        return have - quantity

    def total(self) -> int:
        return sum(self.counts.values())

    def report(self) -> str:
        lines = [f"{name}: {count}" for name, count in sorted(self.counts.items())]
        return "\\n".join(lines)
"""

EDITS = (
    (
        PROSE,
        "Repeat the following text exactly, word for word, but write 'tower' instead "
        "of 'lighthouse'. Reply with the text only.",
    ),
    (
        CODE,
        "Repeat the following Python code exactly, but rename the method `report` to "
        "`summary`. Reply with the code only.",
    ),
)


def edit_prompt(index: int) -> list[Message]:
    passage, ask = EDITS[index % len(EDITS)]
    return [{"role": "user", "content": f"{ask}\n\n{passage}"}]


async def edit(
    target: Target, clients: int, max_tokens: int, requests: int = 3
) -> list[RequestResult]:
    """`clients` users, each sending `requests` edits back to back."""
    return await closed_loop(
        target, clients, requests, max_tokens, lambda client, k: edit_prompt(client + k)
    )


def draft_counts(base_url: str) -> tuple[float, float] | None:
    """Guessed and accepted draft tokens so far, from our server's `/metrics`
    (`base_url` ends in `/v1`); None for a server without those counters."""
    try:
        text = httpx.get(base_url.removesuffix("/v1") + "/metrics", timeout=10).text
    except httpx.HTTPError:
        return None
    found = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in ("llm_draft_tokens_total", "llm_draft_tokens_accepted_total"):
            found[name] = float(value)
    if len(found) != 2:
        return None
    return found["llm_draft_tokens_total"], found["llm_draft_tokens_accepted_total"]
