"""The pure helpers behind `/v1/embeddings`: input shapes, errors, vector encodings."""

from __future__ import annotations

import base64
from array import array
from typing import Any

import msgspec
import pytest

from conversion.embeddings import (
    MAX_INPUTS,
    MAX_REQUEST_TOKENS,
    EmbeddingRequest,
    check_dimensions,
    check_request_tokens,
    embedding_list,
    encode_embedding,
    split_input,
)
from conversion.errors import InvalidRequestError
from conversion.inputs import item_param

decode_request = msgspec.json.Decoder(EmbeddingRequest)


@pytest.mark.parametrize(
    ("value", "items"),
    [
        ("hello", ["hello"]),
        (["a", "b c"], ["a", "b c"]),
        ([5, 6, 7], [[5, 6, 7]]),  # one token array is one input
        ([[5], [6, 7]], [[5], [6, 7]]),
        ([0], [[0]]),
    ],
)
def test_every_openai_input_shape_becomes_a_list_of_inputs(value: Any, items: Any) -> None:
    request = decode_request.decode(msgspec.json.encode({"input": value}))
    assert split_input(request.input) == items


@pytest.mark.parametrize(
    ("value", "param"),
    [
        ("", "input"),
        ([], "input"),
        ([""], "input"),
        (["a", ""], "input[1]"),
        ([[]], "input"),
        ([[1], []], "input[1]"),
        (["a", 1], "input"),
        ([[1], 2], "input"),
        ([1, -2], "input"),
        ([[1], [3, -2]], "input[1]"),
        (["x"] * (MAX_INPUTS + 1), "input"),
    ],
)
def test_bad_inputs_are_400_naming_the_input(value: Any, param: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        split_input(value)
    assert caught.value.param == param
    assert caught.value.status_code == 400


def test_the_most_inputs_openai_allows_are_accepted() -> None:
    assert len(split_input(["x"] * MAX_INPUTS)) == MAX_INPUTS


def test_input_param_names_the_index_only_among_several() -> None:
    assert item_param("input", 0, 1) == "input"
    assert item_param("input", 0, 2) == "input[0]"
    assert item_param("input", 7, 9) == "input[7]"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("encoding_format", "hex", "Invalid enum value"),
        ("dimensions", 0, ">= 1"),
        ("input", 1.5, "Expected"),
        ("input", [True], "Expected"),
        ("input", {"text": "a"}, "Expected"),
    ],
)
def test_the_schema_refuses_wrong_types(field: str, value: Any, message: str) -> None:
    body = {"input": "a", field: value}
    with pytest.raises(msgspec.ValidationError, match=message):
        decode_request.decode(msgspec.json.encode(body))


def test_unknown_fields_are_tolerated() -> None:
    request = decode_request.decode(b'{"input": "a", "model": "m", "future_field": 1}')
    assert request.model == "m"
    assert request.encoding_format is None


def test_dimensions_may_only_restate_the_model_size() -> None:
    check_dimensions(None, 576)
    check_dimensions(576, 576)
    with pytest.raises(InvalidRequestError) as caught:
        check_dimensions(256, 576)
    assert caught.value.param == "dimensions"
    assert "576" in caught.value.message


def test_requests_are_bounded_to_openais_token_total() -> None:
    check_request_tokens(MAX_REQUEST_TOKENS)
    with pytest.raises(InvalidRequestError) as caught:
        check_request_tokens(MAX_REQUEST_TOKENS + 1)
    assert caught.value.param == "input"


def test_base64_is_little_endian_float32_as_the_openai_sdk_decodes_it() -> None:
    vector = [0.5, -0.25, 1.0, 0.1]
    encoded = encode_embedding(vector, "base64")
    assert isinstance(encoded, str)
    raw = base64.b64decode(encoded)
    assert raw[:4] == b"\x00\x00\x00\x3f"  # 0.5 as little-endian float32
    assert array("f", raw).tolist() == array("f", vector).tolist()  # the SDK's own decoding
    assert encode_embedding(vector, "float") == vector
    assert encode_embedding(vector, None) == vector


def test_response_shape_matches_openai() -> None:
    body = msgspec.json.decode(
        msgspec.json.encode(embedding_list([[1.0, 0.0], [0.0, 1.0]], 7, "smol", None))
    )
    assert body == {
        "object": "list",
        "data": [
            {"object": "embedding", "index": 0, "embedding": [1.0, 0.0]},
            {"object": "embedding", "index": 1, "embedding": [0.0, 1.0]},
        ],
        "model": "smol",
        "usage": {"prompt_tokens": 7, "total_tokens": 7},
    }
