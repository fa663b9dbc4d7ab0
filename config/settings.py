"""Settings of LLM Service and their built-in defaults.

Every field has its default here and nowhere else; `config/example.toml` lists the same
keys for people, and a unit test keeps the two in step.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

__all__ = (
    "ConfigModel",
    "CatalogSettings",
    "LimitSettings",
    "ModelEntry",
    "ModelSettings",
    "ResponseStoreSettings",
    "SamplingDefaults",
    "ServerSettings",
    "Settings",
    "SpeculativeSettings",
)


class ConfigModel(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Base of every settings section.

    Strict on purpose: a misspelt key in a TOML file or an environment variable must stop
    the server at start-up with a message naming it, not be ignored. Frozen because a
    running app must not see its configuration change under it (subclasses repeat
    `frozen=True` so that type checkers see it too).
    """


class ModelSettings(ConfigModel, frozen=True):
    """Which GGUF file to serve and how llama.cpp loads it."""

    path: str | None = None
    """Explicit path of a GGUF file. When set it wins over `repo`/`file`."""
    draft_path: str | None = None
    """GGUF of a small draft model with the same vocabulary, for
    `speculative.mode = "draft"` (checked at start-up)."""
    repo: str = "Qwen/Qwen2.5-0.5B-Instruct-GGUF"
    """Hugging Face Hub repository that `scripts/download_model.py` fetches from."""
    file: str = "*q4_k_m.gguf"
    """File name or glob pattern (the quantization) inside `repo`."""
    dir: str = "models"
    """Folder that downloads go to (one sub-folder per repository)."""
    id: str | None = None
    """Model id the API reports; default: the GGUF file name without `.gguf`."""
    n_ctx: Annotated[int, Meta(ge=0)] = 4096
    """Context tokens per request (prompt + completion), reserved for each of the
    `n_parallel` slots; 0 = the model's training context."""
    n_parallel: Annotated[int, Meta(ge=1, le=64)] = 4
    """Requests generated at once, batched into each decode step (llama-server's
    `--parallel`). 4 gives a laptop CPU most of the batching gain; each slot costs one
    `n_ctx` of KV cache. More requests than slots wait in the queue."""
    n_threads: Annotated[int, Meta(ge=1)] | None = None
    """CPU threads for generation; default: all cores up to 4, else half of them."""
    n_threads_batch: Annotated[int, Meta(ge=1)] | None = None
    """CPU threads for prompt processing; default: same as `n_threads`."""
    n_batch: Annotated[int, Meta(ge=1)] = 512
    """Most tokens per llama.cpp decode call. While other requests are streaming, a
    prompt is evaluated in smaller pieces, sized so their tokens keep flowing."""
    flash_attn: Literal["auto", "on", "off"] = "auto"
    """llama.cpp flash attention. `auto` on a CPU: on while `batch_invariant` holds
    (without it llama.cpp's attention rounds one token differently from a batch, so
    replies would depend on the load), else whichever path a start-up measurement finds
    faster; on a GPU, llama.cpp's own choice."""
    kv_cache_type: Literal["f16", "q8_0"] = "f16"
    """KV cache precision. `q8_0` halves its memory; it needs flash attention and
    decodes about 10% slower."""
    n_gpu_layers: Annotated[int, Meta(ge=-1)] = 0
    """Layers to offload to a GPU build of llama.cpp (-1 = all); 0 on a CPU build."""
    chat_format: str | None = None
    """Name of a llama-cpp-python built-in chat format (e.g. `chatml`) instead of the
    template stored in the GGUF file."""
    chat_template_file: str | None = None
    """Path of a Jinja chat template to use instead of the GGUF's own."""
    reasoning_format: Literal["auto", "none"] = "auto"
    """`auto`: a reasoning model's thinking is returned apart from the answer
    (`reasoning_content` in chat, a `reasoning` item in the Responses API); `none`: it
    stays in the content as the model wrote it, markers and all."""
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high", "xhigh"] | None = None
    """Effort when a request sets none. `none` turns a model's thinking off where its
    template can (Qwen3's `enable_thinking`); gpt-oss takes low/medium/high; unset:
    thinking on, at the template's own effort."""
    batch_invariant: bool = True
    """Keep every reply independent of what else is generating and of what the cache
    held: ggml's CPU backend rounds a step of one token differently from a step of many
    in its repacked weight layouts (Q4_0, Q4_K, IQ4_NL), its tiled K-quant products (8+
    tokens) and its tiled and split flash attention (64+ rows, 512+ cached cells). True
    loads the weights without repacking and keeps every step on ggml's reference paths
    (`GGML_CPU_TILED_MM=0`, and `GGML_CPU_USE_REF=1`, which the llama.cpp that
    scripts/dev.py builds reads; README, Request fields). False uses them all."""
    amx_kernels: bool = False
    """Let ggml's AMX kernels run when the installed llama.cpp has them compiled in. Off:
    the model loads without llama.cpp's extra buffer types, the only way weights reach
    them, because in the llama.cpp of llama-cpp-python 0.3.36 they crash Intel CPUs
    with AMX ("Illegal instruction"). `scripts/dev.py` builds without them; turn this
    on only with a llama.cpp where that is fixed."""
    embeddings: bool = True
    """Serve `/v1/embeddings` from the same GGUF: the mean of its last hidden states,
    normalized to unit length. Its first use costs one more context (one sequence of KV
    cache and a compute buffer); false = `/v1/embeddings` answers 400."""


class SamplingDefaults(ConfigModel, frozen=True):
    """Values used when a request leaves a field out. OpenAI's defaults unless changed."""

    temperature: Annotated[float, Meta(ge=0, le=2)] = 1.0
    top_p: Annotated[float, Meta(gt=0, le=1)] = 1.0
    max_tokens: Annotated[int, Meta(ge=1)] | None = None
    """Completion cap when a request sets none; unset = until the model stops or the
    context is full."""
    seed: int | None = None
    """Seed when a request sets none; unset = a fresh random seed per request."""


class ServerSettings(ConfigModel, frozen=True):
    """HTTP side: where to listen, how many requests may wait, how much to log."""

    host: str = "127.0.0.1"
    port: Annotated[int, Meta(ge=0, le=65535)] = 8000
    api_keys: list[str] = msgspec.field(default_factory=list)
    """Keys a client must send as `Authorization: Bearer <key>` on /v1; empty = any key
    works. Also settable as LLM_SERVICE_API_KEYS (comma-separated)."""
    api_key_file: str | None = None
    """A file of further API keys, one per line (blank lines and `#` comments skipped)."""
    cors_origins: list[str] = msgspec.field(default_factory=list)
    """Web origins browsers may call the API from (`*` = any); empty = no CORS."""
    queue_size: Annotated[int, Meta(ge=0)] = 4096
    """Requests that may wait while all slots generate: a burst queues (a waiting short
    request costs about 45 KiB: 489 waiting added 21 MiB); past it, 503 with the
    expected wait in Retry-After."""
    queue_tokens: Annotated[int, Meta(ge=0)] = 4_000_000
    """Prompt tokens that may wait at once, the queue's memory (a waiting token costs
    about 75 bytes, prompt, text and body: 196 waiting 3,490-token prompts added
    48 MiB, so the default is about 290 MiB); past it, 503."""
    log_level: Literal["debug", "info", "warning", "error", "critical"] = "info"
    log_prompts: bool = False
    """Also log each chat request's messages (logger `llm_service.prompts`). Off by
    default: prompts are often private."""
    chat_page: bool = True
    """Serve the browser chat page at `/` (a client of the public API)."""
    shutdown_grace: Annotated[float, Meta(ge=0)] = 30.0
    """Seconds running generations get to finish after SIGTERM or Ctrl-C; then they end
    with `finish_reason: "length"`. New requests get 503 meanwhile."""


class LimitSettings(ConfigModel, frozen=True):
    """Bounds on what one request may ask for; beyond them it gets a 4xx, never a 500."""

    max_body_bytes: Annotated[int, Meta(ge=1024)] = 4 * 1024 * 1024
    """Largest request body; a bigger one is refused with 413 before it is read."""
    max_messages: Annotated[int, Meta(ge=1)] = 1000
    """Most messages in one chat request (400 beyond)."""
    max_tokens: Annotated[int, Meta(ge=1)] | None = None
    """Highest `max_tokens` a request may ask for (400 beyond, as OpenAI answers a cap
    above a model's limit); unset = only the context length bounds it."""
    max_stop_length: Annotated[int, Meta(ge=1)] = 256
    """Longest stop string, in characters (400 beyond). OpenAI allows 4 of them."""
    max_choices: Annotated[int, Meta(ge=1)] = 8
    """Most choices one request may ask for: `n`, times the number of prompts of a
    legacy completion (400 beyond). Each choice is one generation; beyond the free
    slots they wait in the queue like separate requests."""
    request_timeout: Annotated[float, Meta(gt=0)] | None = 600.0
    """Seconds a generation may run (queueing included); it then ends with
    `finish_reason: "length"` and what it has so far. Unset = no limit."""


class ResponseStoreSettings(ConfigModel, frozen=True):
    """The Responses API: stored responses (`store`, `previous_response_id`, and
    `GET`/`DELETE /v1/responses/{id}`) in a SQLite file, the key that seals reasoning
    for stateless clients (`reasoning.key` beside it), and hosted tools."""

    store: bool = True
    """Keep responses (unless a request says `store: false`), as OpenAI does; false =
    keep nothing: `previous_response_id` and the read routes then find nothing."""
    dir: str = "data"
    """Folder of the database file `responses.sqlite3` (created when needed)."""
    ttl: Annotated[float, Meta(gt=0)] = 30 * 24 * 3600.0
    """Seconds a stored response is kept (OpenAI keeps them 30 days)."""
    max_bytes: Annotated[int, Meta(ge=1024)] = 256 * 1024 * 1024
    """Most bytes of stored JSON; past it the oldest responses are dropped."""
    hosted_tools: Literal["omit", "refuse"] = "omit"
    """Tools OpenAI runs on its side (`web_search`, `file_search`, `code_interpreter`,
    remote `mcp`, ...), which this server cannot: `omit` leaves them out of what the
    model is offered and names them in the `llm-omitted-tools` header and the log (so
    clients that always send one, as Codex does, work); `refuse` answers 400."""


class SpeculativeSettings(ConfigModel, frozen=True):
    """Speculative decoding: each generating slot guesses its next tokens and the same
    decode step checks them, so one step can yield several tokens. Replies are the
    same with it on or off (see `app/engine/speculation.py`)."""

    mode: Literal["auto", "off", "ngram", "draft"] = "auto"
    """`ngram`: guesses are the tokens that followed the last earlier occurrence of the
    sequence's final `ngram` tokens in the prompt or the reply (no second model);
    `draft`: a small model of the same vocabulary (`model.draft_path`) guesses them;
    `off`: one token per step. `auto` (the default) is `ngram`, unless the model's
    logits depend on the shape of the step that computes them (probed at start-up) while
    `model.batch_invariant` holds: then guesses would make replies depend on the load,
    and it is `off` (Gemma-3-270M Q4_K_M did with llama.cpp's shape-chosen kernels).
    Measured on copied text, n-gram guessing ran 1.17x as fast with one client; free
    chat makes almost no guesses, and no slot guesses where batching already makes a
    guess cost nearly a plain token (README, Speculative decoding)."""
    max_draft: Annotated[int, Meta(ge=2, le=62)] = 62
    """Most guessed tokens one slot checks in one step (a draft that stands whole
    doubles the next, from 8 up to this). llama.cpp checks tokens more cheaply per token
    the more one step carries, so long drafts pay where text is copied (README). At
    most 62: from 64 query tokens of one sequence on, llama.cpp's CPU flash attention
    over an f16 cache switches to a tiled kernel that rounds differently, unless
    `model.batch_invariant` keeps the reference path."""
    ngram: Annotated[int, Meta(ge=1, le=32)] = 12
    """Tokens of the sequence's end that must recur earlier for a guess. Short n-grams
    (", and the") recur everywhere and point at the wrong place: measured on the edit
    benchmark, 3 tokens let 58% of the guesses stand, 12 tokens 81%."""


class ModelEntry(ConfigModel, frozen=True):
    """One `[[models.entries]]` table: a model of the catalog besides the default one.

    `model`, `sampling` and `speculative` hold overrides of those sections' keys for this
    model only; they are checked against the sections when the catalog is built.
    """

    id: str | None = None
    """The id requests name; default: the GGUF file name without `.gguf`."""
    path: str | None = None
    """The GGUF file (the first part of a split one). Else `repo`/`file`, as downloaded."""
    repo: str | None = None
    file: str = "*q4_k_m.gguf"
    aliases: list[str] = msgspec.field(default_factory=list)
    """Other names that reach this model (e.g. `gpt-4o-mini`)."""
    keep_alive: Annotated[float, Meta(ge=0)] | msgspec.UnsetType | None = msgspec.UNSET
    """This model's `models.keep_alive`."""
    model: dict[str, Any] = msgspec.field(default_factory=dict)
    sampling: dict[str, Any] = msgspec.field(default_factory=dict)
    speculative: dict[str, Any] = msgspec.field(default_factory=dict)


class CatalogSettings(ConfigModel, frozen=True):
    """Several models behind one endpoint: which the catalog holds, which is the default,
    and how many stay loaded (`app/models/`). The catalog is the default model, every GGUF
    under `model.dir`, and `[[models.entries]]` (TOML cannot make `models` both a table of
    these keys and an array of tables, hence `entries`)."""

    default: str | None = None
    """Id or alias of the default model; unset: `model.path`, a downloaded `model.repo`,
    else the embedded model."""
    unknown: Literal["default", "error"] = "default"
    """A request naming a model the catalog lacks: `default` serves it with the default
    model (so `gpt-4` works); `error` answers 404 `model_not_found`."""
    max_loaded: Annotated[int, Meta(ge=1)] = 3
    """Models resident at once (Ollama's default on a CPU); the least recently used idle
    one is unloaded to make room."""
    max_memory: Annotated[int, Meta(ge=0)] | None = None
    """Bytes the resident models may take, by their estimates (weights + KV cache +
    compute buffers, read from the GGUF); unset: 70% of physical memory."""
    keep_alive: Annotated[float, Meta(ge=0)] | None = 300.0
    """Seconds a model other than the default stays loaded with no requests (Ollama's 5
    minutes); unset: until evicted."""
    min_resident: Annotated[float, Meta(ge=0)] = 5.0
    """Seconds a loaded model is kept before it may be evicted for another one, so that
    a client alternating among more models than fit waits, rather than the server
    spending its time loading."""
    allow_pull: bool = False
    """Enable `POST /models/pull`, which downloads a GGUF from the Hub into `model.dir`."""
    entries: list[ModelEntry] = msgspec.field(default_factory=list)


class Settings(ConfigModel, frozen=True):
    """All settings, one section per concern."""

    model: ModelSettings = msgspec.field(default_factory=ModelSettings)
    sampling: SamplingDefaults = msgspec.field(default_factory=SamplingDefaults)
    server: ServerSettings = msgspec.field(default_factory=ServerSettings)
    limits: LimitSettings = msgspec.field(default_factory=LimitSettings)
    responses: ResponseStoreSettings = msgspec.field(default_factory=ResponseStoreSettings)
    speculative: SpeculativeSettings = msgspec.field(default_factory=SpeculativeSettings)
    models: CatalogSettings = msgspec.field(default_factory=CatalogSettings)
