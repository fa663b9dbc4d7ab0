"""Per-request native sampling, and the checks that keep its inputs valid.

Each request gets its own sampler (and its own seeded generator), so its choices never
depend on what else is batched with it. Inputs llama.cpp would reject (a token id
outside the vocabulary, a grammar it cannot parse) are found in `check_sampling`, on
the request's own path, where they can still be a 400.
"""

from __future__ import annotations

import ctypes
import math
import random
from typing import Any

import llama_cpp
import numpy as np

from conversion.errors import InvalidRequestError
from conversion.generation import GenerationParams, SamplingParams

__all__ = ("RequestSampler", "check_sampling")

_TOKEN_DATA = np.dtype([("id", "<i4"), ("logit", "<f4"), ("p", "<f4")])
"""`llama_token_data` as numpy lays it out, so a whole vocabulary of candidates is
built from the logits in one vectorised copy."""


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


_Bias = tuple[np.ndarray[Any, np.dtype[Any]], np.ndarray[Any, np.dtype[Any]]] | None
"""A request's logit biases as token ids and amounts, or None without any."""

RETRIES = 16
"""Greedy: how many of the best tokens are tested one by one after a refused pick."""
REDRAWS = 8
"""A draw: how many more draws are tested one by one after a refused one."""


class RequestSampler:
    """One request's sampler: a native chain (logit biases, then greedy or top-k, top-p,
    temperature and a seeded draw), and the grammar of a structured reply kept apart
    from it.

    Why apart: a grammar sampler tests every token of the vocabulary against the
    grammar (49,152 for SmolLM2), which measured 11.6 ms a token on one EPYC thread,
    beside 16.5 ms for the model's own step. Most tokens a model picks in a structured reply are
    allowed anyway, so, as llama.cpp's `common_sampler` does, the chain picks first and
    only that one token is tested. When it is refused, a few more picks are tested one
    by one (`_retry`), and only then does the grammar mask the whole vocabulary for the
    chain to pick again. Each way gives the same tokens, in law: for a greedy chain the
    constrained argmax; for a draw without truncation a draw from the constrained
    distribution (rejection sampling: an allowed token is kept with its own
    probability, a refused draw is drawn again, and the final masked draw is itself
    exact). Top-k and top-p would cut the distribution before the grammar did, so with
    them the grammar masks first, every step.
    """

    def __init__(
        self, params: SamplingParams, n_vocab: int, vocab: Any, grammar: str | None
    ) -> None:
        self._n_vocab = n_vocab
        self._bias = _bias_arrays(params)
        self._chain = _chain(params, n_vocab, self._bias)
        self._closed = False
        self._grammar: llama_cpp.llama_sampler_p | None = None
        self._candidates: np.ndarray[Any, np.dtype[Any]] | None = None
        self._greedy = params.temperature == 0
        self._check_after = self._greedy or (params.top_k is None and params.top_p >= 1)
        if grammar is not None:  # only tokens that keep the reply valid stay possible
            self._grammar = llama_cpp.llama_sampler_init_grammar(vocab, grammar.encode(), b"root")
            if not self._grammar:  # llama.cpp could not parse it (checked at submit already)
                self.close()
                raise ValueError("llama.cpp rejected the grammar")

    def sample(self, ctx: llama_cpp.llama_context_p, index: int, *, constrained: bool) -> int:
        """The token at logits row `index`; `constrained=False` leaves the grammar out
        (a thinking reply's grammar waits for the answer) and the grammar's state as
        it was."""
        grammar = self._grammar if constrained else None
        if grammar is None:
            return int(llama_cpp.llama_sampler_sample(self._chain, ctx, index))
        picked: int | None = None
        if self._check_after:
            picked = int(llama_cpp.llama_sampler_sample(self._chain, ctx, index))
            if not self._allows(grammar, picked):
                picked = self._retry(grammar, ctx, index)
        if picked is None:
            picked = self._sample_masked(grammar, ctx, index)
            llama_cpp.llama_sampler_accept(self._chain, picked)
        llama_cpp.llama_sampler_accept(grammar, picked)
        return picked

    def _retry(
        self, grammar: llama_cpp.llama_sampler_p, ctx: llama_cpp.llama_context_p, index: int
    ) -> int | None:
        """After a refused pick, an allowed token found by testing a few more one by
        one, or None (the whole vocabulary is masked then). Greedy: the best tokens in
        order, the first allowed is the constrained argmax (unless it ties a token
        outside those tested). A draw: draws again, each kept if allowed."""
        if not self._greedy:
            for _ in range(REDRAWS):
                token = int(llama_cpp.llama_sampler_sample(self._chain, ctx, index))
                if self._allows(grammar, token):
                    return token
            return None
        logits = np.ctypeslib.as_array(
            llama_cpp.llama_get_logits_ith(ctx, index), shape=(self._n_vocab,)
        )
        if self._bias is not None:
            logits = logits.copy()
            logits[self._bias[0]] += self._bias[1]
        best = np.argpartition(logits, -RETRIES)[-RETRIES:]
        best = best[np.lexsort((best, -logits[best]))]  # best first, then the lower id
        floor = logits[best[-1]]
        for token in best.tolist():
            if self._allows(grammar, token):
                return int(token) if logits[token] > floor else None
        return None

    @staticmethod
    def _allows(grammar: llama_cpp.llama_sampler_p, token: int) -> bool:
        single = llama_cpp.llama_token_data(token, 1.0, 0.0)
        candidates = llama_cpp.llama_token_data_array(ctypes.pointer(single), 1, -1, False)
        llama_cpp.llama_sampler_apply(grammar, ctypes.byref(candidates))
        return bool(single.logit != -math.inf)

    def _sample_masked(
        self, grammar: llama_cpp.llama_sampler_p, ctx: llama_cpp.llama_context_p, index: int
    ) -> int:
        """The chain's pick among the tokens the grammar allows."""
        n_vocab = self._n_vocab
        if self._candidates is None:
            self._candidates = np.zeros(n_vocab, _TOKEN_DATA)
        candidates = self._candidates
        logits = llama_cpp.llama_get_logits_ith(ctx, index)
        candidates["id"] = np.arange(n_vocab, dtype=np.int32)  # again: top-k/p sort in place
        candidates["logit"] = np.ctypeslib.as_array(logits, shape=(n_vocab,))
        candidates["p"] = 0.0
        view = llama_cpp.llama_token_data_array(
            candidates.ctypes.data_as(llama_cpp.llama_token_data_p), n_vocab, -1, False
        )
        llama_cpp.llama_sampler_apply(grammar, ctypes.byref(view))
        llama_cpp.llama_sampler_apply(self._chain, ctypes.byref(view))
        return int(candidates["id"][view.selected])

    def close(self) -> None:
        """Free the native samplers; the sampler is not used after."""
        if self._grammar:
            llama_cpp.llama_sampler_free(self._grammar)
        self._grammar = None
        if not self._closed:
            llama_cpp.llama_sampler_free(self._chain)
            self._closed = True


def _bias_arrays(params: SamplingParams) -> _Bias:
    """The request's logit biases as token ids and amounts (-100 bans: -inf), for the
    chain and for the greedy retry, which adds them itself."""
    if not params.logit_bias:
        return None
    ids = np.array([token for token, _ in params.logit_bias], dtype=np.int64)
    amounts = [-math.inf if bias <= -100 else bias for _, bias in params.logit_bias]
    return ids, np.array(amounts, dtype=np.float32)


def _chain(
    params: SamplingParams,
    n_vocab: int,
    bias: _Bias,
) -> llama_cpp.llama_sampler_p:
    """The native chain: the logit biases (`_bias_arrays`), then greedy at temperature
    0, else top-p, temperature, and a draw from the request's own seeded generator (so
    one request's randomness never depends on another's); top-k before top-p when a
    request (Anthropic's) asks for it."""
    chain: llama_cpp.llama_sampler_p = llama_cpp.llama_sampler_chain_init(
        llama_cpp.llama_sampler_chain_default_params()
    )
    if bias is not None:
        biases = (llama_cpp.llama_logit_bias * len(bias[0]))()
        for entry, token, amount in zip(biases, bias[0].tolist(), bias[1].tolist(), strict=True):
            entry.token, entry.bias = token, amount
        llama_cpp.llama_sampler_chain_add(
            chain, llama_cpp.llama_sampler_init_logit_bias(n_vocab, len(biases), biases)
        )
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
