# ruff: noqa: E501 - the fixtures are model outputs, verbatim, one per line
"""Model families: detection from templates, reasoning and calls in each one's syntax.

The outputs below are what each family's models write (as llama.cpp's chat tests and
the families' templates show it); the templates are minimal ones written here that
carry each family's markers, not copies. A reply goes through the engine's thinking
phases (`app.engine.thinking`) and the shaper as it would when served: whole, and split
into stream pieces at every boundary, which must give the same result.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from typing import Any

import pytest

from app.engine.thinking import Thinking
from conversion.errors import InvalidRequestError
from conversion.families import (
    FALLBACK,
    Family,
    ReplyShaper,
    detect_family,
    request_variables,
    template_variables,
    thinking_state,
)
from conversion.generation import ThinkingPlan
from conversion.structure import FreeText, Json, Literal, Structure
from conversion.tools import ToolPlan, plan_tools

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city"],
        },
    },
}
TIME = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}

GEN = "{% if add_generation_prompt %}"
TEMPLATES = {
    "hermes": "<|im_start|>{{ m }}<tool_call>{{ tools }}</tool_call>"
    + GEN
    + "<|im_start|>assistant\n{% endif %}",
    "qwen3": "{{ tools }}<tool_call><think></think>{% if enable_thinking is defined %}{% endif %}"
    + GEN
    + "<|im_start|>assistant\n{% if enable_thinking is defined and not enable_thinking %}"
    "<think>\n\n</think>\n\n{% endif %}{% endif %}",
    "qwq": "<tool_call></think>" + GEN + "<|im_start|>assistant\n<think>\n{% endif %}",
    "qwen3-coder": "<tool_call><function=x><parameter=y>{{ tools }}",
    "deepseek-r1": "<｜tool▁call▁begin｜>function<｜tool▁sep｜>```json</think>"
    + GEN
    + "<｜Assistant｜><think>\n{% endif %}",
    "deepseek-v3": "<｜tool▁call▁begin｜>x<｜tool▁sep｜>"
    "{% if thinking is defined %}</think>{% endif %}",
    "harmony": "<|start|>system<|message|>Reasoning: {{ reasoning_effort }}<|end|>"
    "<|channel|>final" + GEN + "<|start|>assistant{% endif %}",
    "llama3": "<|start_header_id|>ipython<|end_header_id|><|python_tag|>{{ tools }}",
    "mistral": "[TOOL_CALLS]x[ARGS]{{ tools }}",
    "mistral-json": "[TOOL_CALLS][{{ tools }}]",
    "magistral": "[THINK][/THINK][TOOL_CALLS]x[ARGS]",
    "gemma4": "<|tool_call>call:x{}<tool_call|><|channel>thought<channel|>{{ enable_thinking }}",
    "phi4": "<|tool_call|>{{ tools }}<|/tool_call|>",
    "plain": "{% for m in messages %}{{ m.content }}{% endfor %}",
}


@pytest.mark.parametrize(
    ("template", "family", "thinks", "switch"),
    [
        ("hermes", "Hermes / Qwen", False, None),
        ("qwen3", "Hermes / Qwen", True, "enable_thinking"),
        ("qwq", "Hermes / Qwen", True, None),
        ("qwen3-coder", "Qwen3-Coder XML", False, None),
        ("deepseek-r1", "DeepSeek R1", True, None),
        ("deepseek-v3", "DeepSeek V3", True, "thinking"),
        ("harmony", "gpt-oss (harmony)", True, "reasoning_effort"),
        ("llama3", "Llama 3.x", False, None),
        ("mistral", "Mistral [ARGS]", False, None),
        ("mistral-json", "Mistral JSON", False, None),
        ("magistral", "Mistral [ARGS]", True, None),
        ("gemma4", "Gemma 4", True, "enable_thinking"),
        ("phi4", "Phi-4-mini", False, None),
    ],
)
def test_families_are_detected_from_their_templates_markers(
    template: str, family: str, thinks: bool, switch: str | None
) -> None:
    found = detect_family(TEMPLATES[template])
    assert found.name == family
    assert (found.thinking is not None) is thinks
    variables = template_variables(found, "high")
    assert (next(iter(variables), None)) == switch
    assert found.detected_by.startswith("the template has")


def test_a_template_without_markers_gets_the_fallback() -> None:
    assert detect_family(TEMPLATES["plain"]) is not FALLBACK  # a fresh one...
    assert detect_family(TEMPLATES["plain"]).name == FALLBACK.name  # ...of the fallback
    assert detect_family(None) is FALLBACK
    assert detect_family(TEMPLATES["plain"]).tools.name == "hermes"


def test_reasoning_settings_reach_the_template_and_requests_cannot_override_the_server() -> None:
    qwen3 = detect_family(TEMPLATES["qwen3"])
    assert template_variables(qwen3, "none") == {"enable_thinking": False}
    assert template_variables(qwen3, None) == {"enable_thinking": True}  # always set
    assert template_variables(qwen3, "none", {"enable_thinking": True}) == {"enable_thinking": True}
    harmony = detect_family(TEMPLATES["harmony"])
    assert template_variables(harmony, "minimal") == {"reasoning_effort": "low"}
    assert template_variables(harmony, None) == {}
    with pytest.raises(InvalidRequestError) as caught:
        request_variables({"messages": []})
    assert caught.value.param == "chat_template_kwargs.messages"


@pytest.mark.parametrize(
    ("template", "prompt", "state"),
    [
        ("qwen3", "<|im_start|>assistant\n", "free"),
        ("qwen3", "<|im_start|>assistant\n<think>\n\n</think>\n\n", "closed"),
        ("qwq", "<|im_start|>assistant\n<think>\n", "open"),
        ("deepseek-r1", "<｜Assistant｜><think>\n", "open"),
        ("harmony", "<|start|>assistant", "free"),
        ("hermes", "<|im_start|>assistant\n", None),
    ],
)
def test_where_the_prompt_leaves_the_thinking(
    template: str, prompt: str, state: str | None
) -> None:
    assert thinking_state(detect_family(TEMPLATES[template]), prompt) == state


@dataclass
class Shaped:
    reasoning: str
    content: str
    calls: list[tuple[str, Any]]
    finish: str


def serve(
    family: Family, output: str, plan: ToolPlan | None, cuts: list[int], state: str
) -> Shaped:
    """The output split at `cuts`, through the engine's thinking phases and the shaper."""
    thinking = None
    if family.thinking is not None and state != "closed":
        start = family.thinking.start if state == "free" else None
        thinking = Thinking(ThinkingPlan(family.thinking.end, start))
    shaper = ReplyShaper(family, plan)
    reasoning, content = [], []
    bounds = [0, *cuts, len(output)]
    for a, b in itertools.pairwise(bounds):
        pieces: list[tuple[str, bool]] = []
        piece = output[a:b].encode()
        if thinking is not None:
            text, answer = thinking.feed(piece)
            pieces.append((text, True))
            if answer is not None:
                thinking = None
                pieces.append((answer.decode(), False))
        else:
            pieces.append((piece.decode(), False))
        for text, is_thinking in pieces:
            if text:
                think, said = shaper.feed(text, is_thinking)
                reasoning.append(think)
                content.append(said)
    if thinking is not None and (tail := thinking.finish()):
        think, said = shaper.feed(tail, thinking.phase == "thinking")
        reasoning.append(think)
        content.append(said)
    think, rest, calls, finish = shaper.finish("stop")
    return Shaped(
        "".join([*reasoning, think]),
        "".join([*content, rest]),
        [(c.name, json.loads(c.arguments)) for c in calls],
        finish,
    )


PARIS = ("get_weather", {"city": "Paris"})
CASES: list[tuple[str, str, str, str, str, list[tuple[str, Any]]]] = [
    # (template, prompt state, model output, reasoning, content, calls)
    (
        "hermes",
        "-",
        'Let me check.<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>',
        "",
        "Let me check.",
        [PARIS],
    ),
    (
        "hermes",
        "-",
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n<tool_call>\n{"name": "get_time", "arguments": {}}\n</tool_call>',
        "",
        "",
        [PARIS, ("get_time", {})],
    ),
    ("hermes", "-", '{"name": "get_weather", "arguments": {"city": "Paris"}}', "", "", [PARIS]),
    ("hermes", "-", "It is sunny.", "", "It is sunny.", []),
    (
        "hermes",
        "-",
        '<tool_call>\n{"name": "unknown", "arguments": {}}\n</tool_call>',
        "",
        '<tool_call>\n{"name": "unknown", "arguments": {}}\n</tool_call>',
        [],
    ),
    (
        "hermes",
        "-",
        '<tool_call>{"name": "get_weather", "arguments": {"city": "Par',
        "",
        '<tool_call>{"name": "get_weather", "arguments": {"city": "Par',
        [],
    ),
    (
        "qwen3",
        "free",
        "<think>\nI should greet.\n</think>\n\nHello!",
        "I should greet.",
        "Hello!",
        [],
    ),
    (
        "qwen3",
        "free",
        '<think>\nNeed the weather.\n</think>\n\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>',
        "Need the weather.",
        "",
        [PARIS],
    ),
    ("qwen3", "free", "Hello without thinking.", "", "Hello without thinking.", []),
    ("qwen3", "closed", "Hello.", "", "Hello.", []),
    ("qwq", "open", "I'm\nthinking\n</think>\nHello", "I'm\nthinking", "Hello", []),
    (
        "deepseek-r1",
        "open",
        'Reasoning</think>\n\n<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n{"city": "Paris"}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>',
        "Reasoning",
        "",
        [PARIS],
    ),
    (
        "deepseek-r1",
        "open",
        'x</think><｜tool_calls_begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n{"city": "Paris"}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>',
        "x",
        "",
        [PARIS],
    ),
    (
        "deepseek-v3",
        "closed",
        'Sure.<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>{"city": "Paris"}<｜tool▁call▁end｜><｜tool▁call▁begin｜>get_time<｜tool▁sep｜>{}<｜tool▁call▁end｜><｜tool▁calls▁end｜>',
        "",
        "Sure.",
        [PARIS, ("get_time", {})],
    ),
    (
        "harmony",
        "free",
        "<|channel|>analysis<|message|>I'm\nthinking<|end|><|start|>assistant<|channel|>final<|message|>Hello, world!",
        "I'm\nthinking",
        "Hello, world!",
        [],
    ),
    ("harmony", "free", "<|channel|>final<|message|>Straight away.", "", "Straight away.", []),
    (
        "harmony",
        "free",
        '<|channel|>analysis<|message|>Need weather<|end|><|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{"city": "Paris"}',
        "Need weather",
        "",
        [PARIS],
    ),
    (
        "harmony",
        "free",
        '<|channel|>analysis<|message|>hm<|end|><|start|>assistant to=functions.get_weather<|channel|>commentary json<|message|>{"city": "Paris"}',
        "hm",
        "",
        [PARIS],
    ),
    ("llama3", "-", '{"name": "get_weather", "parameters": {"city": "Paris"}}', "", "", [PARIS]),
    (
        "llama3",
        "-",
        '<|python_tag|>{"name": "get_weather", "parameters": {"city": "Paris"}}',
        "",
        "",
        [PARIS],
    ),
    (
        "mistral",
        "-",
        'Checking.[TOOL_CALLS]get_weather[ARGS]{"city": "Paris"}[TOOL_CALLS]get_time[ARGS]{}',
        "",
        "Checking.",
        [PARIS, ("get_time", {})],
    ),
    (
        "mistral",
        "-",
        '[TOOL_CALLS]get_weather[CALL_ID]123456789[ARGS]{"city": "Paris"}',
        "",
        "",
        [PARIS],
    ),
    (
        "mistral-json",
        "-",
        '[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Paris"}, "id": "123456789"}]',
        "",
        "",
        [PARIS],
    ),
    (
        "magistral",
        "free",
        "[THINK]Let me see.[/THINK]The answer is 4.",
        "Let me see.",
        "The answer is 4.",
        [],
    ),
    (
        "gemma4",
        "free",
        '<|channel>thought\nthinking<channel|><|tool_call>call:get_weather{city:<|"|>Paris<|"|>,days:3}<tool_call|>',
        "thinking",
        "",
        [("get_weather", {"city": "Paris", "days": 3})],
    ),
    (
        "phi4",
        "-",
        '<|tool_call|>{"name": "get_weather", "arguments": {"city": "Paris"}}<|/tool_call|>',
        "",
        "",
        [PARIS],
    ),
    (
        "qwen3-coder",
        "-",
        "<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n<parameter=days>\n3\n</parameter>\n</function>\n</tool_call>",
        "",
        "",
        [("get_weather", {"city": "Paris", "days": 3})],
    ),
    (
        "qwen3-coder",
        "-",
        "<function=get_weather>\n<parameter=city>\nNew\nYork\n</parameter>\n</function>",
        "",
        "",
        [("get_weather", {"city": "New\nYork"})],
    ),
]


@pytest.mark.parametrize(("template", "state", "output", "reasoning", "content", "calls"), CASES)
def test_replies_are_read_alike_whole_and_split_at_every_boundary(
    template: str, state: str, output: str, reasoning: str, content: str, calls: list[Any]
) -> None:
    family = detect_family(TEMPLATES[template])
    plan = plan_tools([WEATHER, TIME], "auto")
    expected = Shaped(reasoning, content, calls, "tool_calls" if calls else "stop")
    assert serve(family, output, plan, [], state) == expected
    for cut in range(1, len(output)):
        assert serve(family, output, plan, [cut], state) == expected, cut
    assert serve(family, output, plan, list(range(1, len(output))), state) == expected


def test_reasoning_format_none_leaves_the_thinking_in_the_content() -> None:
    family = detect_family(TEMPLATES["qwen3"])
    shaper = ReplyShaper(family, None, separate_reasoning=False)
    assert shaper.feed("<think>hm</think>", thinking=True) == ("", "<think>hm</think>")
    assert shaper.feed("Hi", thinking=False) == ("", "Hi")


def test_a_reply_cut_off_while_thinking_keeps_what_was_thought() -> None:
    family = detect_family(TEMPLATES["qwen3"])
    shaper = ReplyShaper(family, None)
    streamed = shaper.feed("<think>\nFirst I will ", thinking=True)[0]
    reasoning, content, calls, finish = shaper.finish("length")
    assert (streamed + reasoning, content, calls, finish) == ("First I will", "", [], "length")


def test_a_forced_call_cut_off_is_a_call_and_a_free_one_is_content() -> None:
    family = detect_family(TEMPLATES["mistral"])
    forced = ReplyShaper(family, plan_tools([WEATHER], "required"))
    forced.feed('[TOOL_CALLS]get_weather[ARGS]{"city": "Pa')
    _, content, calls, finish = forced.finish("length")
    assert (content, finish) == ("", "length")
    assert [(c.name, c.arguments) for c in calls] == [("get_weather", '{"city": "Pa')]
    free = ReplyShaper(family, plan_tools([WEATHER], "auto"))
    free.feed('[TOOL_CALLS]get_weather[ARGS]{"city": "Pa')
    assert free.finish("length")[1:] == ('[TOOL_CALLS]get_weather[ARGS]{"city": "Pa', [], "length")


def _written(structure: Structure, arguments: dict[str, Any]) -> str:
    """The text a grammar for `structure` lets the model write, for given arguments."""
    out = []
    for part in structure.options[0]:
        if isinstance(part, Literal):
            out.append(part.text)
        elif isinstance(part, Json):
            key = part.param.rpartition(".")[2]
            out.append(json.dumps(arguments.get(key, arguments)))
        else:
            assert isinstance(part, FreeText)
            out.append(arguments["city"])
    return "".join(out)


@pytest.mark.parametrize("template", [t for t in TEMPLATES if t not in {"plain", "qwq"}])
def test_a_forced_call_is_written_in_the_familys_own_syntax(template: str) -> None:
    family = detect_family(TEMPLATES[template])
    plan = plan_tools([WEATHER], {"type": "function", "function": {"name": "get_weather"}})
    assert plan is not None
    structure = family.tools.forced(plan)
    text = _written(structure, {"city": "Paris", "days": 2})
    calls = family.tools.parse(text, plan.allowed)
    assert calls is not None, text
    # Qwen3-Coder's forced calls write the required parameters, one tag each
    arguments = {"city": "Paris"} if template == "qwen3-coder" else {"city": "Paris", "days": 2}
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [("get_weather", arguments)]
    # and the way it writes a call in history reads back too
    written = family.tools.write("get_weather", '{"city": "Paris"}')
    again = family.tools.parse(written, plan.allowed)
    assert again is not None
    assert [(c.name, json.loads(c.arguments)) for c in again] == [PARIS], written


def test_mistral_history_ids_have_nine_characters_and_pair_up() -> None:
    syntax = detect_family(TEMPLATES["mistral"]).tools
    first = syntax.history_id("call_abcdef0123456789")
    assert len(first) == 9
    assert first.isalnum()
    assert first == syntax.history_id("call_abcdef0123456789")
    assert first != syntax.history_id("call_other")
