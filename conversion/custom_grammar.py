"""A custom tool's input grammar (Lark or a regex) -> GBNF over a JSON string's text.

The Responses API's `custom` tools take free-form text, optionally constrained by a
grammar the client writes in Lark or as a regular expression (Codex declares
`apply_patch` this way). Here the model writes such a call in its family's syntax,
like any call, with the text as the `input` string of a JSON arguments object: so the
grammar has to describe the text *as a JSON string holds it*, with `"`, `\\` and
control characters escaped. That is what `string_grammar` returns: GBNF rules whose
`root` matches exactly the escaped forms of the strings the client's grammar accepts.

The Lark grammar is read by the `lark` library itself (its parser of grammar files,
`%import common.…` included), which also expands `?`, `*`, `+` and `[…]` into plain
rules; the rules it makes for repetition are left-recursive, which llama.cpp's grammar
engine refuses, so they are rewritten as repetitions. Terminals are literals or Python
regular expressions, read by Python's own regex parser. What a GBNF grammar cannot
express (look-arounds, back-references, `%ignore`, regex flags, left recursion through
other rules) is a 400 naming the definition.
"""

from __future__ import annotations

import re
import re._constants as sre  # type: ignore[import-not-found]
import re._parser as sre_parse  # type: ignore[import-not-found]  # Python's own regex parser
from collections.abc import Sequence
from typing import Any

from lark.exceptions import LarkError
from lark.grammar import Rule
from lark.lexer import PatternStr, TerminalDef
from lark.load_grammar import load_grammar

from conversion.errors import InvalidRequestError

__all__ = ("GBNF_STRING_KEY", "string_grammar")

GBNF_STRING_KEY = "x-llm-service-gbnf"
"""A JSON-schema keyword of this server's own: on a string schema, the GBNF rules (as
text, `root` first) its content must match. Only schemas built here carry it."""

_UNSAFE = [(0x00, 0x1F), (0x22, 0x22), (0x5C, 0x5C), (0x7F, 0x7F)]
"""Characters a JSON string cannot hold raw (the server's JSON grammar also escapes DEL)."""
_SHORT_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_MAX_CHAR = 0x10FFFF
_CATEGORIES = {
    sre.CATEGORY_DIGIT: [(0x30, 0x39)],
    sre.CATEGORY_WORD: [(0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)],
    sre.CATEGORY_SPACE: [(0x09, 0x0D), (0x20, 0x20)],
}
_NOT_CATEGORIES = {
    sre.CATEGORY_NOT_DIGIT: sre.CATEGORY_DIGIT,
    sre.CATEGORY_NOT_WORD: sre.CATEGORY_WORD,
    sre.CATEGORY_NOT_SPACE: sre.CATEGORY_SPACE,
}
Ranges = list[tuple[int, int]]


class _Unenforceable(ValueError):
    """Something the grammar says that GBNF cannot."""


def string_grammar(syntax: Any, definition: Any, param: str) -> str:
    """GBNF rules, `root` first, for the JSON-escaped text `definition` accepts.
    `syntax` is the format's (`lark` or `regex`); `param` names the definition."""
    if not isinstance(definition, str) or not definition:
        raise InvalidRequestError("A grammar format needs a `definition`.", param=param)
    try:
        if syntax == "regex":
            return f"root ::= {_regex(definition)}"
        if syntax == "lark":
            return _lark(definition)
    except _Unenforceable as exc:
        raise InvalidRequestError(f"This grammar cannot be enforced: {exc}", param=param) from exc
    except (LarkError, re.error) as exc:
        raise InvalidRequestError(f"This grammar is not valid: {exc}", param=param) from exc
    raise InvalidRequestError(
        f"Grammar syntax {syntax!r} is not supported; use 'lark' or 'regex'.",
        param=param.rsplit(".", 1)[0] + ".syntax",
    )


# --- Lark ---------------------------------------------------------------------------


def _lark(definition: str) -> str:
    grammar, _ = load_grammar(  # type: ignore[no-untyped-call]
        definition, "<definition>", [], True
    )
    terminals, rules, ignored = grammar.compile(["start"], set())
    if ignored:
        raise _Unenforceable("%ignore lets text in anywhere between tokens")
    by_origin: dict[str, list[Rule]] = {}
    for rule in rules:
        by_origin.setdefault(rule.origin.name, []).append(rule)
    if "start" not in by_origin:
        raise _Unenforceable("it has no `start` rule")
    _check_left_recursion(by_origin, {t.name: _matches_empty(t) for t in terminals})
    lines = ["root ::= r-start"]
    lines += [_rule(name, alternatives) for name, alternatives in by_origin.items()]
    lines += [f"t-{_name(t.name)} ::= {_terminal(t)}" for t in terminals]
    return "\n".join(lines)


def _name(lark_name: str) -> str:
    return lark_name.replace("_", "-")


def _symbols(expansion: Sequence[Any]) -> str:
    names = [("t-" if s.is_term else "r-") + _name(s.name) for s in expansion]
    return " ".join(names) or '""'


def _rule(name: str, alternatives: list[Rule]) -> str:
    """One GBNF rule; a left-recursive `A: A x | y` (how Lark writes `y x*`) becomes
    `y x*`. Left recursion through other rules is refused (llama.cpp would be too)."""
    recursive = [r.expansion[1:] for r in alternatives if r.expansion[:1] == [r.origin]]
    base = [r.expansion for r in alternatives if r.expansion[:1] != [r.origin]]
    if not base:
        raise _Unenforceable(f"rule '{name}' never ends")
    body = " | ".join(_symbols(e) for e in base)
    if recursive:
        body = f"( {body} ) ( {' | '.join(_symbols(e) for e in recursive)} )*"
    return f"r-{_name(name)} ::= {body}"


def _matches_empty(terminal: TerminalDef) -> bool:
    pattern = terminal.pattern
    if isinstance(pattern, PatternStr):
        return not pattern.value
    return re.fullmatch(pattern.value, "") is not None


def _check_left_recursion(rules: dict[str, list[Rule]], empty_terminals: dict[str, bool]) -> None:
    """Refuse a rule that can start with itself through other rules (or after symbols
    that may match nothing): llama.cpp's grammar engine cannot run it. `A: A x` alone
    is fine, `_rule` rewrites it."""
    nullable: set[str] = set()
    changed = True
    while changed:  # the rules that can match nothing
        changed = False
        for name, alternatives in rules.items():
            if name not in nullable and any(
                all(
                    empty_terminals.get(s.name, False) if s.is_term else s.name in nullable
                    for s in r.expansion
                )
                for r in alternatives
            ):
                nullable.add(name)
                changed = True
    starts: dict[str, set[str]] = {name: set() for name in rules}
    for name, alternatives in rules.items():
        for r in alternatives:
            expansion = r.expansion[1:] if r.expansion[:1] == [r.origin] else r.expansion
            for s in expansion:
                if s.is_term:
                    if not empty_terminals.get(s.name, False):
                        break
                    continue
                starts[name].add(s.name)
                if s.name not in nullable:
                    break
    for name in rules:
        seen: set[str] = set()
        todo = list(starts[name])
        while todo:
            current = todo.pop()
            if current == name:
                raise _Unenforceable(f"rule '{name}' can start with itself through other rules")
            if current not in seen:
                seen.add(current)
                todo.extend(starts.get(current, ()))


def _terminal(terminal: TerminalDef) -> str:
    pattern = terminal.pattern
    if pattern.flags:
        raise _Unenforceable(f"terminal {terminal.name} has flags {''.join(pattern.flags)}")
    if isinstance(pattern, PatternStr):
        return _literal(pattern.value) if pattern.value else '""'
    return _regex(pattern.value)


# --- regular expressions ------------------------------------------------------------


def _regex(source: str) -> str:
    """A Python regular expression matched whole (`^`/`$` at its ends are allowed)."""
    parsed = sre_parse.parse(source)
    if parsed.state.flags & ~re.UNICODE:  # (?i), (?s), (?x)...: a global flag
        raise _Unenforceable("regex flags")
    items = list(parsed)
    if (
        items
        and items[0][0] == sre.AT
        and items[0][1] in (sre.AT_BEGINNING, sre.AT_BEGINNING_STRING)
    ):
        items = items[1:]
    if items and items[-1][0] == sre.AT and items[-1][1] in (sre.AT_END, sre.AT_END_STRING):
        items = items[:-1]
    return _sequence(items)


def _sequence(items: list[Any]) -> str:
    return " ".join(_item(op, av) for op, av in items) or '""'


def _item(op: Any, av: Any) -> str:
    if op == sre.LITERAL:
        return _literal(chr(av))
    if op == sre.NOT_LITERAL:
        return _char_set([(av, av)], negated=True)
    if op == sre.ANY:
        return _char_set([(0x0A, 0x0A)], negated=True)
    if op == sre.IN:
        return _in(av)
    if op in (sre.MAX_REPEAT, sre.MIN_REPEAT):
        low, high, sub = av
        return f"( {_sequence(list(sub))} ){_quantifier(low, high)}"
    if op == sre.SUBPATTERN:
        _, add_flags, del_flags, sub = av
        if add_flags or del_flags:
            raise _Unenforceable("inline regex flags")
        return f"( {_sequence(list(sub))} )"
    if op == sre.BRANCH:
        return "( " + " | ".join(_sequence(list(b)) for b in av[1]) + " )"
    raise _Unenforceable(
        f"regex {str(op).lower()} (only literals, classes, groups, "
        "alternatives and repetition can be)"
    )


def _quantifier(low: int, high: int) -> str:
    if high == sre.MAXREPEAT:
        return {0: "*", 1: "+"}.get(low, f"{{{low},}}")
    if (low, high) == (0, 1):
        return "?"
    return f"{{{low}}}" if low == high else f"{{{low},{high}}}"


def _in(members: list[Any]) -> str:
    negated = bool(members) and members[0][0] == sre.NEGATE
    ranges: Ranges = []
    for op, av in members[1:] if negated else members:
        if op == sre.LITERAL:
            ranges.append((av, av))
        elif op == sre.RANGE:
            ranges.append(av)
        elif op == sre.CATEGORY and av in _CATEGORIES:
            ranges += _CATEGORIES[av]
        elif op == sre.CATEGORY and av in _NOT_CATEGORIES and len(members) == 1:
            return _char_set(_CATEGORIES[_NOT_CATEGORIES[av]], negated=True)
        else:
            raise _Unenforceable(f"regex class member {op} {av}")
    return _char_set(ranges, negated=negated)


# --- characters as a JSON string holds them ------------------------------------------


def _escaped(char: str) -> str:
    """`char` as it stands inside a JSON string (the shortest escape, if it needs one)."""
    code = ord(char)
    if char in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[char]
    return f"\\u{code:04x}" if code < 0x20 or code == 0x7F else char


def _literal(text: str) -> str:
    """A GBNF literal of `text`'s JSON-escaped form."""
    inner = "".join(_gbnf_char(c, in_class=False) for c in "".join(map(_escaped, text)))
    return f'"{inner}"'


def _gbnf_char(char: str, *, in_class: bool) -> str:
    """`char` in a GBNF literal or class: as itself where that is unambiguous, else as
    a hex escape (the escapes llama.cpp's grammar parser reads)."""
    code = ord(char)
    if in_class:
        plain = (char.isalnum() and code < 0x80) or char == " "
    else:
        plain = char not in '\\"' and 0x20 <= code != 0x7F
    if plain:
        return char
    if code < 0x100:
        return f"\\x{code:02X}"
    return f"\\u{code:04X}" if code < 0x10000 else f"\\U{code:08X}"


def _class(ranges: Ranges, *, negated: bool) -> str:
    def one(code: int) -> str:
        return _gbnf_char(chr(code), in_class=True)

    body = "".join(one(lo) if lo == hi else f"{one(lo)}-{one(hi)}" for lo, hi in ranges)
    return f"[{'^' if negated else ''}{body}]"


def _merged(ranges: Ranges) -> Ranges:
    out: Ranges = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def _minus(ranges: Ranges, removed: Ranges) -> Ranges:
    out: Ranges = []
    for lo, hi in _merged(ranges):
        for r_lo, r_hi in _merged(removed):
            if r_hi < lo or r_lo > hi:
                continue
            if r_lo > lo:
                out.append((lo, r_lo - 1))
            lo = r_hi + 1
            if lo > hi:
                break
        if lo <= hi:
            out.append((lo, hi))
    return out


def _char_set(ranges: Ranges, *, negated: bool) -> str:
    """A character class over a JSON string's text: the characters that stand raw in
    one class, and those that need an escape as their escapes (control characters
    grouped by their last hex digit, so `.` stays a handful of alternatives)."""
    members = _minus([(0, _MAX_CHAR)], ranges) if negated else _merged(ranges)
    raw = _minus(members, _UNSAFE)
    unsafe = {chr(c) for lo, hi in _minus(members, raw) for c in range(lo, hi + 1)}
    if negated:  # shorter as the complement: everything but the set and the unsafe
        options = [_class(_merged([*ranges, *_UNSAFE]), negated=True)] if raw else []
    else:
        options = [_class(raw, negated=False)] if raw else []
    options += [_literal(c) for c in sorted(unsafe) if c in _SHORT_ESCAPES]
    for high in (0, 1):
        digits = [
            ord(c) & 0xF for c in sorted(unsafe) if c not in _SHORT_ESCAPES and ord(c) >> 4 == high
        ]
        if digits:
            hex_class = "".join(f"{d:x}" for d in digits)
            options.append(f'"\\\\u00{high}" [{hex_class}]')
    if "\x7f" in unsafe:
        options.append(_literal("\x7f"))
    if not options:
        raise _Unenforceable("a character class that matches nothing")
    return options[0] if len(options) == 1 else "( " + " | ".join(options) + " )"
