"""Per-request native sampler chains, and the checks that keep their inputs valid.

Each request gets its own chain (and its own seeded generator), so its choices never
depend on what else is batched with it. Inputs llama.cpp would reject (a token id
outside the vocabulary, a grammar it cannot parse) are found in `check_sampling`, on
the request's own path, where they can still be a 400.
"""

from __future__ import annotations

import math
import random
from typing import Any

import llama_cpp

from conversion.errors import InvalidRequestError
from conversion.generation import GenerationParams, SamplingParams

__all__ = ("check_sampling", "new_sampler")


def check_sampling(params: GenerationParams, n_vocab: int, vocab: Any) -> None:
    for token, _ in params.sampling.logit_bias:
        if token >= n_vocab:
            raise InvalidRequestError(
                f"logit_bias names token {token}, outside the model's vocabulary of {n_vocab}.",
                param="logit_bias",
            )
    if params.grammar is not None:
        probe = llama_cpp.llama_sampler_init_grammar(vocab, params.grammar.encode(), b"root")
        if not probe:
            raise InvalidRequestError(
                "llama.cpp cannot use the grammar built from this JSON schema.",
                param=params.structure.param if params.structure else params.schema_param,
            )
        llama_cpp.llama_sampler_free(probe)


def _llama_seed(seed: int | None) -> int:
    """OpenAI seeds are any integer; llama.cpp takes uint32 where 0xFFFFFFFF means random."""
    if seed is None:
        return random.randrange(0xFFFFFFFF)
    return min(seed & 0xFFFFFFFF, 0xFFFFFFFE)


def new_sampler(
    params: SamplingParams, n_vocab: int, vocab: Any, grammar: str | None = None
) -> llama_cpp.llama_sampler_p:
    """A native sampler chain for one request: its logit biases (-100 bans: -inf), then
    greedy at temperature 0, else top-p, temperature, and a draw from the request's own
    seeded generator (so one request's randomness never depends on another's); top-k
    before top-p when a request (Anthropic's) asks for it."""
    chain: llama_cpp.llama_sampler_p = llama_cpp.llama_sampler_chain_init(
        llama_cpp.llama_sampler_chain_default_params()
    )
    if params.logit_bias:
        biases = (llama_cpp.llama_logit_bias * len(params.logit_bias))()
        for entry, (token, bias) in zip(biases, params.logit_bias, strict=True):
            entry.token, entry.bias = token, -math.inf if bias <= -100 else bias
        llama_cpp.llama_sampler_chain_add(
            chain, llama_cpp.llama_sampler_init_logit_bias(n_vocab, len(biases), biases)
        )
    if grammar is not None:  # only tokens that keep the reply valid JSON stay possible
        constrained = llama_cpp.llama_sampler_init_grammar(vocab, grammar.encode(), b"root")
        if not constrained:  # llama.cpp could not parse it (checked at submit already)
            llama_cpp.llama_sampler_free(chain)
            raise ValueError("llama.cpp rejected the grammar")
        llama_cpp.llama_sampler_chain_add(chain, constrained)
    if params.temperature == 0:
        llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_greedy())
        return chain
    if params.top_k is not None:
        llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_top_k(params.top_k))
    if params.top_p < 1:
        top_p = llama_cpp.llama_sampler_init_top_p(params.top_p, 1)
        llama_cpp.llama_sampler_chain_add(chain, top_p)
    llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_temp(params.temperature))
    llama_cpp.llama_sampler_chain_add(
        chain, llama_cpp.llama_sampler_init_dist(_llama_seed(params.seed))
    )
    return chain
