"""UI fixtures: a real uvicorn server in a thread, and one headless Chromium per module.

Browser tests need Debian's ``chromium`` (``.ci/run`` installs it). Without it they skip,
except under ``CI=true``, where a missing browser fails the run.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]


class Served:
    """A running UI server: its base URL and a small JSON/text client."""

    def __init__(self, base: str) -> None:
        self.base = base

    def get(self, path: str) -> tuple[int, dict[str, str], bytes]:
        """Status, headers and body of a GET (errors are answers, not exceptions)."""
        try:
            with urllib.request.urlopen(self.base + path, timeout=30) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as err:
            return err.code, dict(err.headers), err.read()

    def json(self, path: str) -> Any:
        status, _, body = self.get(path)
        assert status == 200, body
        return json.loads(body)


@contextmanager
def serve(store: Any) -> Iterator[Served]:
    """Serve ``create_app(store)`` on a free loopback port until the block ends."""
    import uvicorn

    from trainforge.ui import create_app

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(create_app(store), log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the UI server did not start")
        time.sleep(0.02)
    try:
        yield Served(f"http://127.0.0.1:{port}")
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """A headless Chromium (Debian's package) driven by Playwright, one per test module."""
    if not os.path.exists(CHROMIUM) or shutil.which("chromium") is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{CHROMIUM} is missing under CI: .ci/run must install chromium")
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def pg_store_url(pg_databases: Any) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for one module (fails under CI if unreachable)."""
    from trainforge.tracking import TrackingStore

    with pg_databases() as url:
        TrackingStore(url).dispose()
        yield url


@pytest.fixture(scope="module")
def mysql_store_url(mysql_databases: Any) -> Iterator[str]:
    """A fresh, migrated MariaDB database for one module (fails under CI if unreachable)."""
    from trainforge.tracking import TrackingStore

    with mysql_databases() as url:
        TrackingStore(url).dispose()
        yield url
