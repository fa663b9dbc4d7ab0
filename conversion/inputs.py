"""The "text or tokens" union OpenAI uses for `prompt` (completions) and `input`
(embeddings): a string, strings, one token array, or token arrays.

msgspec takes one list type per union, so the wire type is a list of strings, ids or
id lists, and `texts_or_token_lists` checks it is one of the four shapes.
"""

from __future__ import annotations

from conversion.errors import InvalidRequestError

__all__ = ("TextOrTokens", "TextsOrTokens", "item_param", "texts_or_token_lists")

TextsOrTokens = str | list[str | int | list[int]]
TextOrTokens = str | list[int]
"""One item: text to tokenize, or token ids to use as they are."""


def item_param(field: str, index: int, count: int) -> str:
    """The `param` an error about item `index` of `count` names."""
    return field if count == 1 else f"{field}[{index}]"


def texts_or_token_lists(value: TextsOrTokens, field: str) -> list[TextOrTokens]:
    """The items; a 400 naming `field` (or `field[i]`) for an empty list, a mix of
    shapes, an empty item, or a negative token id."""
    if isinstance(value, str):
        items: list[TextOrTokens] = [value]
    elif not value:
        raise InvalidRequestError(f"`{field}` must not be an empty list.", param=field)
    elif all(isinstance(item, int) for item in value):
        items = [[item for item in value if isinstance(item, int)]]  # one token array
    elif all(isinstance(item, str) for item in value):
        items = [item for item in value if isinstance(item, str)]
    elif all(isinstance(item, list) for item in value):
        items = [item for item in value if isinstance(item, list)]
    else:
        raise InvalidRequestError(
            f"`{field}` must be a string, a list of strings, a list of token ids, or a "
            "list of lists of token ids, not a mix of them.",
            param=field,
        )
    for index, item in enumerate(items):
        param = item_param(field, index, len(items))
        if not item:
            raise InvalidRequestError(f"An item of `{field}` must not be empty.", param=param)
        if isinstance(item, list) and (bad := next((t for t in item if t < 0), None)) is not None:
            raise InvalidRequestError(f"Token id {bad} is negative.", param=param)
    return items
