"""``trainforge ui``: a local, read-only web app over the tracking store.

Layer 3: imports tracking and checkpoint (no torch). Starlette and uvicorn are optional
(``pip install 'trainforge[ui]'``); importing this package does not import them, only
:func:`create_app` and :func:`serve` do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from trainforge.ui._server import DEFAULT_HOST, DEFAULT_PORT, is_loopback, serve

if TYPE_CHECKING:
    from starlette.applications import Starlette

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "create_app", "is_loopback", "serve"]


def create_app(store: Any = None) -> Starlette:
    """The ASGI app over ``store`` (see :func:`trainforge.ui._app.create_app`)."""
    from trainforge.ui._server import _require_ui

    _require_ui()
    from trainforge.ui._app import create_app as build

    return build(store)
