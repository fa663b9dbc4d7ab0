"""Responses API input items -> checked item dicts -> the turn's messages
(`conversion.turn`), which every protocol renders through.

Items are JSON values as the client sent them. `read_items` checks each one (a 400
names the exact field, e.g. `input[2].content[0].type`), gives it an `id` when it has
none (stored items are listed and referenced by id), and resolves `item_reference`s.
`to_turn_messages` maps them, and this server's own output items read back from the
store, onto the turn's messages, so a conversation continued with `previous_response_id`
renders to exactly the prompt that resending its items would (and so finds the
engine's prefix cache).

Calls of namespaced and custom tools come back under the names the model was offered
(`conversion.responses.tools`), a custom call's input as its one `input` argument. A
reasoning item's thinking (its `content`, or its sealed `encrypted_content`, which must
be this server's: `conversion.responses.sealing`) goes with the assistant turn that
follows it.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from conversion.errors import InvalidRequestError
from conversion.responses.sealing import unseal
from conversion.responses.tools import model_name
from conversion.turn import HistoryCall, TurnMessage

__all__ = ("Item", "new_id", "read_items", "to_turn_messages")

Item = dict[str, Any]

_TEXT_PARTS = {"input_text", "output_text", "text", "summary_text", "reasoning_text"}
_UNREADABLE_PARTS = {"input_image", "input_file", "input_audio"}
_ROLES = {"user", "system", "developer", "assistant"}
_ID_PREFIX = {
    "message": "msg",
    "function_call": "fc",
    "function_call_output": "fco",
    "custom_tool_call": "ctc",
    "custom_tool_call_output": "ctco",
    "reasoning": "rs",
}
_CALLS = ("function_call", "custom_tool_call")


def new_id(prefix: str) -> str:
    """An id in OpenAI's style: a prefix and 48 hex digits."""
    return f"{prefix}_{secrets.token_hex(24)}"


def _fail(message: str, param: str) -> InvalidRequestError:
    return InvalidRequestError(message, param=param)


def _string(item: Item, key: str, where: str) -> str:
    value = item.get(key)
    if not isinstance(value, str):
        raise _fail(f"`{key}` must be a string.", f"{where}.{key}")
    return value


def _check_parts(content: Any, where: str, *, allow_refusal: bool) -> None:
    """Text parts only: a text-only model cannot see images, files or audio."""
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise _fail("`content` must be a string or a list of parts.", where)
    for index, part in enumerate(content):
        here = f"{where}[{index}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in _UNREADABLE_PARTS:
            raise _fail(
                f"Parts of type {kind!r} are not supported: this model reads text only.",
                f"{here}.type",
            )
        if kind == "refusal" and allow_refusal:
            _string(part, "refusal", here)
            continue
        if kind not in _TEXT_PARTS:
            raise _fail(f"Unknown content part type {kind!r}.", f"{here}.type")
        _string(part, "text", here)


def _kind(item: Item) -> Any:
    """An item's type; `message` and `item_reference` may leave it out."""
    if "type" in item:
        return item["type"]
    if "role" in item:
        return "message"
    if set(item) == {"id"}:
        return "item_reference"
    return None


def _optional_string(item: Item, key: str, where: str) -> None:
    if item.get(key) is not None:
        _string(item, key, where)


def _check_reasoning(item: Item, where: str, key: bytes) -> None:
    """A reasoning item's parts are text; a sealed text must be this server's."""
    for field in ("summary", "content"):
        if item.get(field) is not None:
            _check_parts(item[field], f"{where}.{field}", allow_refusal=False)
    _optional_string(item, "encrypted_content", where)
    sealed = item.get("encrypted_content")
    if sealed is not None and unseal(sealed, key) is None:
        raise _fail(
            "encrypted_content was not sealed by this server (or was changed since); send "
            "the reasoning item as this server returned it, or leave it out.",
            f"{where}.encrypted_content",
        )


def _check(item: Any, where: str, key: bytes) -> Item:
    if not isinstance(item, dict):
        raise _fail("Each input item must be an object.", where)
    kind = _kind(item)
    if kind == "message":
        if item.get("role") not in _ROLES:
            raise _fail("role must be one of user, system, developer, assistant.", f"{where}.role")
        _check_parts(
            item.get("content"), f"{where}.content", allow_refusal=item["role"] == "assistant"
        )
    elif kind in _CALLS:
        for field in ("call_id", "name", "arguments" if kind == "function_call" else "input"):
            _string(item, field, where)
        _optional_string(item, "namespace", where)
    elif kind in ("function_call_output", "custom_tool_call_output"):
        _string(item, "call_id", where)
        _check_parts(item.get("output"), f"{where}.output", allow_refusal=False)
    elif kind == "reasoning":
        _check_reasoning(item, where, key)
    elif kind == "item_reference":
        _string(item, "id", where)
    else:
        raise _fail(f"Input items of type {kind!r} are not supported.", f"{where}.type")
    out = {**item, "type": kind}
    if kind != "item_reference" and not isinstance(out.get("id"), str):
        out["id"] = new_id(_ID_PREFIX.get(kind, "item"))
    return out


def read_items(
    value: str | list[Any] | None,
    resolve: Callable[[str], Item | None] = lambda _: None,
    param: str = "input",
    *,
    key: bytes = b"",
) -> list[Item]:
    """The request's `input` as checked items with ids; a string is one user message.
    `resolve` finds a stored item by id, for `item_reference`s; `key` is the server's
    key for sealed reasoning."""
    if value is None:
        return []
    if isinstance(value, str):
        text = {"type": "input_text", "text": value}
        return [{"type": "message", "role": "user", "content": [text], "id": new_id("msg")}]
    items = []
    for index, raw in enumerate(value):
        item = _check(raw, f"{param}[{index}]", key)
        if item["type"] == "item_reference":
            found = resolve(item["id"])
            if found is None:
                raise _fail(f"No stored item has the id {item['id']!r}.", f"{param}[{index}].id")
            item = found
        items.append(item)
    return items


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "\n".join(str(part.get("text", part.get("refusal", ""))) for part in content or ())


def _call(item: Item) -> HistoryCall:
    """A call item as the model wrote it: under its offered name, a custom tool's input
    as its one argument."""
    name = model_name(item["name"], item.get("namespace"))
    if item["type"] == "custom_tool_call":
        arguments = json.dumps({"input": item["input"]}, ensure_ascii=False)
        return HistoryCall(name, arguments, item["call_id"])
    return HistoryCall(name, item["arguments"], item["call_id"])


def _thinking(item: Item, key: bytes) -> str:
    sealed = item.get("encrypted_content")
    if isinstance(sealed, str):
        return unseal(sealed, key) or ""
    return _text(item.get("content"))


def to_turn_messages(
    items: Sequence[Item], instructions: str | None = None, *, key: bytes = b""
) -> tuple[TurnMessage, ...]:
    """`instructions` first (a system message), then the items in order. A call joins
    the assistant message just before it (the one turn that made it), and consecutive
    calls go together, as chat history holds them; thinking goes with the assistant
    turn after it."""
    messages: list[TurnMessage] = []
    if instructions:
        messages.append(TurnMessage("system", instructions))
    previous_kind = None
    thinking: str | None = None
    for item in items:
        kind = item["type"]
        if kind == "message":
            role, text = item["role"], _text(item.get("content"))
            said = thinking if role == "assistant" else None
            messages.append(
                TurnMessage("system" if role == "developer" else role, text, reasoning=said)
            )
        elif kind in _CALLS:
            call = _call(item)
            last = messages[-1] if messages else None
            if previous_kind in (*_CALLS, "message") and last and last.role == "assistant":
                calls = (*last.tool_calls, call)
                messages[-1] = msgspec.structs.replace(last, tool_calls=calls)
            else:
                messages.append(
                    TurnMessage("assistant", "", tool_calls=(call,), reasoning=thinking)
                )
        elif kind in ("function_call_output", "custom_tool_call_output"):
            output = _text(item.get("output"))
            messages.append(TurnMessage("tool", output, tool_call_id=item["call_id"]))
        else:  # reasoning: with the assistant turn that follows
            thinking = _thinking(item, key) or None
            continue
        thinking = None
        previous_kind = kind
    return tuple(messages)
