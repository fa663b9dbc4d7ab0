"""Model families: which one a chat template shows, how its models think and call tools.

`detect_family` reads the template's source (or the built-in format's name) once, at
load. The most specific markers are tried first, so that, say, Qwen3-Coder's XML calls
are not taken for Hermes' `<tool_call>` JSON, which both wrap in `<tool_call>`. A
template that shows no known syntax gets the Hermes fallback, which the engine says in
its log. The thinking markers and how to switch the thinking are read independently
of the tool syntax: a template can have either, both or neither.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from conversion.families.family import (
    EFFORTS,
    RESERVED_VARIABLES,
    Family,
    ThinkingMarkers,
    request_variables,
    template_variables,
    thinking_state,
)
from conversion.families.formats import (
    DeepSeekR1Syntax,
    DeepSeekV3Syntax,
    Gemma4Syntax,
    HarmonySyntax,
    Llama3Syntax,
    MistralArgsSyntax,
    MistralJsonSyntax,
    Phi4Syntax,
    Qwen3CoderSyntax,
)
from conversion.families.shaper import ReplyShaper
from conversion.families.syntax import ToolSyntax

__all__ = (
    "EFFORTS",
    "FALLBACK",
    "RESERVED_VARIABLES",
    "Family",
    "ReplyShaper",
    "ThinkingMarkers",
    "ToolSyntax",
    "detect_family",
    "request_variables",
    "template_variables",
    "thinking_state",
)

FALLBACK = Family("generic (Hermes <tool_call> fallback)")

_DEEPSEEK_TOKENS = (
    "<｜tool▁calls▁begin｜>",
    "<｜tool▁calls▁end｜>",
    "<｜tool▁call▁begin｜>",
    "<｜tool▁call▁end｜>",
    "<｜tool▁sep｜>",
)
_HARMONY_TOKENS = (
    "<|start|>",
    "<|channel|>",
    "<|message|>",
    "<|end|>",
    "<|constrain|>",
    "<|call|>",
)

# (family name, markers in the template that identify it, its tool syntax, tokens to
# keep visible); the first whose markers all occur wins.
_TOOL_FAMILIES: tuple[tuple[str, tuple[str, ...], ToolSyntax, tuple[str, ...]], ...] = (
    ("gpt-oss (harmony)", ("<|channel|>", "<|message|>"), HarmonySyntax(), _HARMONY_TOKENS),
    ("DeepSeek R1", ("<｜tool▁call▁begin｜>", "```json"), DeepSeekR1Syntax(), _DEEPSEEK_TOKENS),
    ("DeepSeek V3", ("<｜tool▁call▁begin｜>",), DeepSeekV3Syntax(), _DEEPSEEK_TOKENS),
    (
        "Qwen3-Coder XML",
        ("<function=", "<parameter="),
        Qwen3CoderSyntax(),
        ("<tool_call>", "</tool_call>"),
    ),
    (
        "Mistral [ARGS]",
        ("[TOOL_CALLS]", "[ARGS]"),
        MistralArgsSyntax(),
        ("[TOOL_CALLS]", "[ARGS]", "[CALL_ID]"),
    ),
    ("Mistral JSON", ("[TOOL_CALLS]",), MistralJsonSyntax(), ("[TOOL_CALLS]",)),
    ("Gemma 4", ("<|tool_call>",), Gemma4Syntax(), ("<|tool_call>", "<tool_call|>", '<|"|>')),
    ("Phi-4-mini", ("<|tool_call|>",), Phi4Syntax(), ("<|tool_call|>", "<|/tool_call|>")),
    ("Llama 3.x", ("<|start_header_id|>", "ipython"), Llama3Syntax(), ("<|python_tag|>",)),
    ("Hermes / Qwen", ("<tool_call>",), ToolSyntax(), ("<tool_call>", "</tool_call>")),
)

_THINKING: tuple[tuple[str, ThinkingMarkers], ...] = (
    ("<|channel|>", ThinkingMarkers("<|channel|>analysis<|message|>", "<|end|>")),
    ("<|channel>thought", ThinkingMarkers("<|channel>thought", "<channel|>")),
    ("[THINK]", ThinkingMarkers("[THINK]", "[/THINK]")),
    ("</think>", ThinkingMarkers("<think>", "</think>")),
)


def _switch(variable: str) -> Callable[[bool], dict[str, Any]]:
    return lambda on: {variable: on}


def _thinking_controls(source: str) -> tuple[Callable[[bool], dict[str, Any]] | None, str | None]:
    """(how to turn the thinking on or off, the variable taking an effort level)."""
    if "reasoning_effort" in source and "<|channel|>" in source:
        return None, "reasoning_effort"
    if "enable_thinking" in source:
        return _switch("enable_thinking"), None
    if re.search(r"\bthinking\b\s*(?:is defined|==|and|%\})", source):
        return _switch("thinking"), None
    return None, None


def detect_family(source: str | None) -> Family:
    """The family a chat template's source shows; the fallback when it shows none (a
    built-in format, or a template without tool or thinking markers)."""
    if not source:
        return FALLBACK
    name, syntax, evidence = FALLBACK.name, ToolSyntax(), ""
    markers: tuple[str, ...] = ()
    for candidate, needles, candidate_syntax, tokens in _TOOL_FAMILIES:
        if all(needle in source for needle in needles):
            name, syntax, markers = candidate, candidate_syntax, tokens
            evidence = " and ".join(repr(n) for n in needles)
            break
    thinking = next((m for needle, m in _THINKING if needle in source), None)
    if thinking is not None:
        markers = (*markers, thinking.start, thinking.end)
        if name == FALLBACK.name:
            name = f"reasoning, {thinking.start}…{thinking.end} (Hermes <tool_call> fallback)"
        evidence = ", ".join(filter(None, [evidence, repr(thinking.end)]))
    switch, effort = _thinking_controls(source)
    harmony = isinstance(syntax, HarmonySyntax)
    final = "<|start|>assistant<|channel|>final<|message|>"
    return Family(
        name,
        syntax,
        thinking,
        markers,
        answer_prefixes=(final, "<|channel|>final<|message|>") if harmony else (),
        answer_prefix=final if harmony else "",
        thinking_switch=switch,
        effort_variable=effort,
        detected_by=f"the template has {evidence}" if evidence else "no known markers",
    )
