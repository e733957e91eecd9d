"""Serve the UI with uvicorn; loopback only unless asked, with a warning when asked."""

from __future__ import annotations

import ipaddress
import logging
from typing import Any

from trainforge.errors import MissingDependencyError, StoreUnavailableError, UiServerError

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "is_loopback", "serve"]

log = logging.getLogger(__name__)
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5005


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(
    database: str | None = None,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    log_level: str = "warning",
) -> None:
    """Open the store and serve the UI until interrupted (blocks).

    Raises:
        MissingDependencyError: starlette or uvicorn is not installed.
        StoreUnavailableError: The store cannot be opened, or a SQLite file does not exist.
        UiServerError: The address cannot be listened on (port taken, unknown host).
    """
    uvicorn = _require_ui()
    from trainforge.tracking import resolve_database_url
    from trainforge.tracking._url import sqlite_path
    from trainforge.ui._app import create_app

    url = resolve_database_url(database)
    path = sqlite_path(url)
    if path is not None and not path.exists():  # a typo must not become a new, empty store
        raise StoreUnavailableError(
            f"no tracking database at {path}",
            path=path,
            hint="pass --db with the store your runs were tracked in (trainforge runs list "
            "--db ... shows its runs)",
        )
    app = create_app(url)
    if not is_loopback(host):
        log.warning(
            "serving on %s: anyone who can reach this address can read every run, param and "
            "metric in %s (the UI has no login); use the default 127.0.0.1 unless you mean it",
            host,
            app.state.store.display_url,
        )
    _check_bindable(host, port)
    config: dict[str, Any] = {"host": host, "port": port, "log_level": log_level}
    uvicorn.run(app, access_log=False, **config)


def _check_bindable(host: str, port: int) -> None:
    """Fail with a clear error before uvicorn does (it would only log and exit)."""
    import socket

    if not 0 <= port <= 65535:
        raise UiServerError(
            f"cannot serve on port {port}: a port is a number from 0 to 65535",
            hint="pick a free port such as 5005 (0: any free port)",
        )
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as err:
        raise UiServerError(
            f"cannot serve on host {host!r}: {err.strerror}",
            hint="use an IP address or name of this machine, e.g. --host 127.0.0.1",
        ) from err
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as err:
            raise UiServerError(
                f"cannot serve on {host}:{port}: {err.strerror}",
                hint="pick another --port (another trainforge ui may be running)",
            ) from err


def _require_ui() -> Any:
    try:
        import starlette  # noqa: F401
        import uvicorn
    except ImportError as err:
        raise MissingDependencyError(
            err.name or "uvicorn", extra="ui", feature="trainforge ui"
        ) from err
    return uvicorn
