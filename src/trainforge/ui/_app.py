"""The ASGI app of ``trainforge ui``: the JSON API, the prebuilt front end, safety headers.

The front end is a handful of ES modules and vendored, pinned browser libraries (uPlot
for charts, TanStack's virtual-core for the runs table) shipped inside the package, so
nothing is built or downloaded at install or run time. Every page path serves the same
``index.html``; the page and all of its state (filter, sort, columns, selected runs,
metric, x axis, smoothing, zoom) live in the URL, so a link reproduces a view.

Every response carries a Content-Security-Policy that allows scripts, styles and requests
only from this server (no inline script, no ``eval``), so even a run name that slipped
into the page as HTML could not run. The front end never writes user strings as HTML in
the first place.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from trainforge.tracking import TrackingStore
from trainforge.ui._api import Api

__all__ = ["CONTENT_SECURITY_POLICY", "PAGES", "STATIC_DIR", "create_app"]

STATIC_DIR = Path(str(files("trainforge.ui") / "static"))
#: Paths that serve the single-page front end.
PAGES = ("/", "/runs", "/runs/{run_id:int}", "/compare", "/registry", "/jobs")
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cache-control", b"no-store"),
]


class SecurityHeaders:
    """ASGI middleware that adds the CSP and friends to every HTTP response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on; add the headers to the response start."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name for name, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in _HEADERS if k not in names]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(store: TrackingStore | str | None = None) -> Starlette:
    """The read-only web app over one tracking store.

    Args:
        store: An open :class:`TrackingStore`, a URL or file path, or None for the default
            store (``$TRAINFORGE_DB``, else ``outputs/trainforge.db``).

    Returns:
        A Starlette application; serve it with uvicorn (``trainforge ui`` does).

    Examples:
        >>> app = create_app("sqlite:///:memory:")
        >>> sorted(r.path for r in app.routes if r.path.startswith("/api/runs"))[:2]
        ['/api/runs', '/api/runs/{run_id:int}']
    """
    opened = store if isinstance(store, TrackingStore) else TrackingStore(store)
    api = Api(opened)
    index = STATIC_DIR / "index.html"

    def page(request: Request) -> Response:
        return FileResponse(index, media_type="text/html")

    routes = [
        *api.routes(),
        Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
        *(Route(path, page, methods=["GET"]) for path in PAGES),
    ]
    app = Starlette(routes=routes, middleware=[Middleware(SecurityHeaders)])
    app.state.store = opened
    return app
