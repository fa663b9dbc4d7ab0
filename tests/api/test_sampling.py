"""A structured reply's sampler picks first and tests the grammar after
(`RequestSampler`): the tokens must be those of masking the whole vocabulary with the
grammar every step (greedy), and a draw must follow the constrained distribution."""

from __future__ import annotations

import ctypes
import math
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import llama_cpp
import numpy as np
import pytest

from app.engine.grammar import grammar_for
from app.engine.sampling import RequestSampler
from conversion.generation import SamplingParams
from tests.conftest import TEST_THREADS

PROMPT = (
    "<|im_start|>user\nInvent a person with two pets, as JSON.<|im_end|>\n<|im_start|>assistant\n"
)
PICK = "<|im_start|>user\nPick a random number from 1 to 100.<|im_end|>\n<|im_start|>assistant\n"
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer"},
        "pets": {"type": "array", "items": {"type": "string"}, "maxItems": 2},
    },
    "required": ["name", "age", "pets"],
}
GRAMMAR = grammar_for(SCHEMA, "response_format")
NUMBER = grammar_for({"type": "integer"}, "response_format")
"""A reply that is one integer: its first token is one of many digits and the sign."""


@dataclass
class Model:
    vocab: Any
    ctx: Any
    n_vocab: int

    def start(self, prompt: str = PROMPT) -> None:
        """The prompt alone in the cache, its last logits ready."""
        text = prompt.encode()
        buffer = (llama_cpp.llama_token * 256)()
        count = llama_cpp.llama_tokenize(self.vocab, text, len(text), buffer, 256, False, True)
        llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(self.ctx), True)
        self.feed(list(buffer[:count]))

    def feed(self, tokens: list[int]) -> None:
        array = (llama_cpp.llama_token * len(tokens))(*tokens)
        batch = llama_cpp.llama_batch_get_one(array, len(tokens))
        assert llama_cpp.llama_decode(self.ctx, batch) == 0

    def logits(self) -> np.ndarray[Any, np.dtype[np.float32]]:
        row = llama_cpp.llama_get_logits_ith(self.ctx, -1)
        return np.ctypeslib.as_array(row, shape=(self.n_vocab,)).copy()


@pytest.fixture(scope="module")
def model(model_path: Path) -> Iterator[Model]:
    loaded = llama_cpp.llama_model_load_from_file(
        str(model_path).encode(), llama_cpp.llama_model_default_params()
    )
    params = llama_cpp.llama_context_default_params()
    params.n_ctx, params.n_threads, params.n_threads_batch = 1024, TEST_THREADS, TEST_THREADS
    ctx = llama_cpp.llama_init_from_model(loaded, params)
    vocab = llama_cpp.llama_model_get_vocab(loaded)
    yield Model(vocab, ctx, llama_cpp.llama_vocab_n_tokens(vocab))
    llama_cpp.llama_free(ctx)
    llama_cpp.llama_model_free(loaded)


def allowed(model: Model, grammar: Any) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """Which tokens the grammar allows next: the grammar applied to every one."""
    data = np.zeros(model.n_vocab, [("id", "<i4"), ("logit", "<f4"), ("p", "<f4")])
    data["id"] = np.arange(model.n_vocab)
    pointer = data.ctypes.data_as(llama_cpp.llama_token_data_p)
    view = llama_cpp.llama_token_data_array(pointer, model.n_vocab, -1, False)
    llama_cpp.llama_sampler_apply(grammar, ctypes.byref(view))
    return np.asarray(data["logit"] != -np.inf)


def masked_greedy(
    model: Model, case: tuple[str, str], ban: int | None, steps: int
) -> tuple[list[int], int]:
    """The reference: the argmax among allowed tokens, every step; and how many steps
    the unconstrained argmax was not allowed (where picking first must try again)."""
    prompt, rules = case
    grammar = llama_cpp.llama_sampler_init_grammar(model.vocab, rules.encode(), b"root")
    tokens, refused = [], 0
    model.start(prompt)
    for _ in range(steps):
        logits = model.logits()
        if ban is not None:
            logits[ban] = -math.inf
        mask = allowed(model, grammar)
        refused += not mask[int(np.argmax(logits))]
        token = int(np.argmax(np.where(mask, logits, -np.inf)))
        tokens.append(token)
        if llama_cpp.llama_vocab_is_eog(model.vocab, token):
            break
        llama_cpp.llama_sampler_accept(grammar, token)
        model.feed([token])
    llama_cpp.llama_sampler_free(grammar)
    return tokens, refused


def picked_first(
    model: Model, case: tuple[str, str], params: SamplingParams, steps: int
) -> list[int]:
    prompt, rules = case
    sampler = RequestSampler(params, model.n_vocab, model.vocab, rules)
    tokens: list[int] = []
    model.start(prompt)
    for _ in range(steps):
        token = sampler.sample(model.ctx, -1, constrained=True)
        tokens.append(token)
        if llama_cpp.llama_vocab_is_eog(model.vocab, token):
            break
        model.feed([token])
    sampler.close()
    return tokens


def runner_up_words(model: Model) -> str:
    """A grammar of the words the model ranks just below its first choice: refused
    first, then several of the best are allowed, and their order decides."""
    model.start(PICK)
    words: list[str] = []
    for token in np.argsort(-model.logits())[:40].tolist():
        piece = llama_cpp.llama_token_to_piece(
            model.vocab, token, buffer := (ctypes.c_char * 64)(), 64, 0, True
        )
        word = buffer.raw[:piece].decode(errors="replace")
        if word.strip().isalpha():
            words.append(word)
    alternatives = " | ".join(f'"{word}"' for word in words[1:6])
    return f"root ::= ({alternatives}) [.!]"


CASES: dict[str, Callable[[Model], tuple[str, str]]] = {
    "person": lambda _: (PROMPT, GRAMMAR),
    "number": lambda _: (PICK, NUMBER),
    "runner-up": lambda model: (PICK, runner_up_words(model)),
}
"""Prompt and grammar: a JSON object, an integer, words ranked below the first choice."""


@pytest.mark.parametrize("ban_first", [False, True], ids=["plain", "logit_bias"])
@pytest.mark.parametrize("name", CASES)
def test_greedy_picks_what_masking_every_step_picks(
    model: Model, name: str, ban_first: bool
) -> None:
    case, ban = CASES[name](model), None
    if ban_first:  # a -100 bias on the reference's first token: the retry must see it
        ban = masked_greedy(model, case, None, 1)[0][0]
    expected, refused = masked_greedy(model, case, ban, 40)
    assert refused >= 1, "the prompt must make the model pick refused tokens"
    bias = ((ban, -100.0),) if ban is not None else ()
    assert picked_first(model, case, SamplingParams(0.0, 1.0, None, bias), 40) == expected


def test_a_draw_follows_the_distribution_the_grammar_leaves(model: Model) -> None:
    """The first token of a reply that must be an integer: the model's own choice is
    mostly not allowed there, so draws go through the redraws and the masked draw; the
    share of each allowed token must match its probability among the allowed ones."""
    temperature, draws = 1.0, 600
    grammar = llama_cpp.llama_sampler_init_grammar(model.vocab, NUMBER.encode(), b"root")
    mask = allowed(model, grammar)
    llama_cpp.llama_sampler_free(grammar)
    model.start(PICK)
    logits = model.logits().astype(np.float64) / temperature
    plain = np.exp(logits - logits.max())
    plain /= plain.sum()
    assert plain[mask].sum() < 0.5, "most first draws must be refused"
    expected = np.where(mask, plain, 0.0) / plain[mask].sum()
    counts: Counter[int] = Counter()
    for seed in range(draws):
        sampler = RequestSampler(
            SamplingParams(temperature, 1.0, seed), model.n_vocab, model.vocab, NUMBER
        )
        counts[sampler.sample(model.ctx, -1, constrained=True)] += 1
        sampler.close()
    assert all(mask[token] for token in counts), "a token the grammar refuses was drawn"
    likely = [int(token) for token in np.flatnonzero(expected >= 0.05)]
    buckets = [(f"token {token}", counts[token], expected[token]) for token in likely]
    rest = draws - sum(counts[token] for token in likely)
    buckets.append(("the other allowed tokens", rest, 1 - sum(expected[likely])))
    assert len(buckets) >= 3
    for name, count, p in buckets:  # each within 4 standard deviations of a fair draw
        share = count / draws
        assert abs(share - p) < 4 * math.sqrt(p * (1 - p) / draws), (name, share, float(p))
