"""`GET /`: the chat page, and `/static/*`, its script and style sheet. `HEAD /` answers
too: clients check the server is there before their first request (Claude Code does,
and warns on a 405).

The page is a client of the public API (`/v1/models`, `/v1/chat/completions` over SSE)
and ships inside the package: no CDN, so it works offline. It is public like
`/health`; the API calls it makes need a key when keys are configured (the page asks).
"""

from __future__ import annotations

from pathlib import Path

from litestar import Response, Router, get, head
from litestar.datastructures import CacheControlHeader
from litestar.handlers import HTTPRouteHandler
from litestar.static_files import create_static_files_router

__all__ = ("STATIC_DIR", "chat_page_routes")

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
_SECURITY_HEADERS = {
    # only our own script and styles; the page talks to this server alone
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}


def chat_page_routes() -> list[Router | HTTPRouteHandler]:
    """The page's handlers (the HTML is read once, when the app is built)."""
    html = (STATIC_DIR / "index.html").read_bytes()

    @get("/", include_in_schema=False, sync_to_thread=False)
    def chat_page() -> Response[bytes]:
        return Response(html, media_type="text/html; charset=utf-8", headers=_SECURITY_HEADERS)

    @head("/", include_in_schema=False, sync_to_thread=False)
    def page_there() -> Response[None]:
        return Response(None, headers=_SECURITY_HEADERS)

    assets = create_static_files_router(
        path="/static",
        directories=[STATIC_DIR],
        include_in_schema=False,
        cache_control=CacheControlHeader(no_cache=True),  # a new release shows at once
    )
    return [chat_page, page_there, assets]
