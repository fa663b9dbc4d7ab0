"""The model's chat template, rendered by llama-cpp-python's Jinja formatter.

By default the template stored in the GGUF file (`tokenizer.chat_template`); config may
name a Jinja file or one of llama-cpp-python's built-in formats instead. Template
errors (e.g. a template's `raise_exception("roles must alternate")`) are the client's
message order, so they become a 400 on `messages`, not a 500.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jinja2
from llama_cpp import llama_chat_format
from llama_cpp._internals import LlamaModel

from config.loader import SettingsError
from config.settings import ModelSettings
from conversion.errors import InvalidRequestError
from conversion.families import detect_family
from conversion.generation import TemplateMessage
from conversion.params import stop_strings
from conversion.system_roles import SystemSupport, fit_system_messages

__all__ = ("ChatTemplate", "builtin_formats", "check_template_settings")

Formatter = Callable[..., llama_chat_format.ChatFormatterResponse]


def builtin_formats() -> list[str]:
    """Names accepted by `model.chat_format` (llama-cpp-python's `format_*` functions)."""
    return sorted(
        name.removeprefix("format_").replace("_", "-")
        for name in dir(llama_chat_format)
        if name.startswith("format_")
    )


def _named_format(name: str) -> Formatter:
    formatter = getattr(llama_chat_format, "format_" + name.replace("-", "_"), None)
    if formatter is None:
        raise SettingsError(
            f"Invalid setting model.chat_format: unknown format {name!r}; "
            f"known: {', '.join(builtin_formats())}"
        )
    return formatter  # type: ignore[no-any-return]


def _template_file(path: Path) -> str:
    try:
        source = path.read_text(encoding="utf-8")
        llama_chat_format.Jinja2ChatFormatter(template=source, eos_token="", bos_token="")
    except (OSError, UnicodeDecodeError, jinja2.TemplateError) as exc:
        raise SettingsError(f"Invalid setting model.chat_template_file: {exc}") from exc
    return source


_FIRST, _LATER = "llm-service-first-system", "llm-service-later-system"
_PROBE: list[dict[str, str]] = [
    {"role": "system", "content": _FIRST},
    {"role": "user", "content": "hi"},
    {"role": "assistant", "content": "hello"},
    {"role": "system", "content": _LATER},
    {"role": "user", "content": "and?"},
]
_SUPPORT_LOG = {
    "anywhere": "",
    "leading": "; it renders only a leading system message, so later ones join it",
    "none": "; it drops system messages, so their text goes into the user messages",
}


def _system_support(formatter: Formatter) -> SystemSupport:
    """Where the template renders system messages, asked with marked ones. A template
    that raises on the conversation is asked again with a leading system message alone,
    then with a user message alone (older Mistral templates raise on any system
    message); one that fails even then keeps its error for each request (a 400)."""
    for messages in (_PROBE, _PROBE[:2]):
        with contextlib.suppress(Exception):  # templates raise anything; the next try tells
            prompt = formatter(messages=messages).prompt
            if _FIRST not in prompt:
                return "none"
            return "anywhere" if _LATER in prompt else "leading"
    try:
        formatter(messages=_PROBE[1:2])
    except Exception:  # noqa: BLE001 (it fails alone too: each request gets its 400)
        return "anywhere"
    return "none"


def check_template_settings(settings: ModelSettings) -> None:
    """Fail at start-up, not at model load, when the configured template is unusable."""
    if settings.chat_template_file is not None:
        _template_file(Path(settings.chat_template_file))
    elif settings.chat_format is not None:
        _named_format(settings.chat_format)


class ChatTemplate:
    """Turns template messages into (prompt text, whether it already has BOS, stops)."""

    def __init__(self, model: LlamaModel, settings: ModelSettings) -> None:
        self.description = ""
        self.renders_tools = False
        """The Jinja template uses `tools` (it lays out tool definitions and calls
        itself); otherwise `conversion.tools` describes them in the system message."""
        self.source: str | None = None
        """The Jinja source, when there is one (a built-in format has none)."""
        self._formatter: Formatter = self._choose(model, settings)
        self.family = detect_family(self.source)
        """How the model thinks and writes calls, as its template shows it."""
        self.system_support = _system_support(self._formatter)
        """Where the template renders system messages; `render` moves the others' text
        where it does (`conversion.system_roles`)."""
        self.description += _SUPPORT_LOG[self.system_support]

    def _choose(self, model: LlamaModel, settings: ModelSettings) -> Formatter:
        if settings.chat_template_file is not None:
            path = Path(settings.chat_template_file)
            self.description = f"Jinja template from {path}"
            return self._jinja(model, _template_file(path))
        if settings.chat_format is not None:
            self.description = f"built-in chat format {settings.chat_format!r}"
            return _named_format(settings.chat_format)
        embedded = model.metadata().get("tokenizer.chat_template")
        if embedded is None:
            raise SettingsError(
                "The model file has no chat template (tokenizer.chat_template); set "
                "model.chat_format or model.chat_template_file"
            )
        self.description = "the model's own chat template (GGUF metadata)"
        return self._jinja(model, embedded)

    def _jinja(self, model: LlamaModel, source: str) -> Formatter:
        self.source = source
        self.renders_tools = re.search(r"\btools\b", source) is not None
        eos, bos = model.token_eos(), model.token_bos()
        return llama_chat_format.Jinja2ChatFormatter(
            template=source,
            eos_token=model.token_get_text(eos) if eos != -1 else "",
            bos_token=model.token_get_text(bos) if bos != -1 else "",
        )

    def render(
        self,
        messages: list[TemplateMessage],
        tools: list[dict[str, Any]] | None = None,
        variables: dict[str, Any] | None = None,
    ) -> tuple[str, bool, tuple[str, ...]]:
        """(prompt, whether it already has BOS, stop strings); `variables` go to the
        template as they are (`chat_template_kwargs`, `enable_thinking`, ...)."""
        messages = fit_system_messages(messages, self.system_support)
        try:
            result = self._formatter(messages=messages, tools=tools, **(variables or {}))
        except (jinja2.TemplateError, ValueError, TypeError, KeyError) as exc:
            raise InvalidRequestError(
                f"The chat template cannot render these messages: {exc}", param="messages"
            ) from exc
        return result.prompt, result.added_special, stop_strings(result.stop)
