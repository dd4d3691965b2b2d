"""Open a report in headless Chromium (Debian's ``chromium`` package) with Playwright: for the tests
and the benchmark, and for anyone who wants a screenshot of a report without a desktop.

Playwright (PyPI ``playwright``, the ``test`` extra) drives the system Chromium through
``executable_path``: no browser is downloaded. The profile is a fresh temporary folder and the
flags keep Chromium from calling home, so every request the page makes is its own.
"""
from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Any, Iterator

from ..errors import MissingDependencyError

__all__ = ["CHROMIUM_PATHS", "CHROMIUM_ARGS", "INSTALL_HINT", "find_chromium", "chromium"]

#: Where Chromium is looked for, in order (``TEAMGRAPH_CHROMIUM`` first when set). Debian's
#: ``/usr/bin/chromium`` is a shell wrapper around ``/usr/lib/chromium/chromium``.
CHROMIUM_PATHS = ("/usr/lib/chromium/chromium", "/usr/bin/chromium", "/usr/bin/chromium-browser")
#: Flags for a headless Chromium in a container: no sandbox (root), no GPU, no background traffic.
CHROMIUM_ARGS = ("--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-default-apps", "--disable-extensions",
                 "--metrics-recording-only", "--no-default-browser-check")
INSTALL_HINT = ("install Debian's chromium (as root: apt-get install -y chromium; `make test` does it when run as root) "
                "or set TEAMGRAPH_CHROMIUM to a Chromium binary")


def find_chromium() -> str:
    """The Chromium binary to drive; MissingDependencyError saying how to install it when there is none."""
    given = os.environ.get("TEAMGRAPH_CHROMIUM")
    if given:
        if not (Path(given).is_file() and os.access(given, os.X_OK)):
            raise MissingDependencyError(f"TEAMGRAPH_CHROMIUM={given}: not an executable file")
        return given
    for path in CHROMIUM_PATHS:
        if Path(path).is_file() and os.access(path, os.X_OK):
            return path
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    raise MissingDependencyError(f"no Chromium found ({', '.join(CHROMIUM_PATHS)}): {INSTALL_HINT}")


@contextlib.contextmanager
def chromium(**launch: Any) -> Iterator[Any]:
    """A headless Chromium (a Playwright ``Browser``), closed on exit."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise MissingDependencyError("playwright is not installed: pip install playwright "
                                     "(the `test` extra; no browser download is needed)") from None
    executable = find_chromium()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, headless=True, args=list(CHROMIUM_ARGS), **launch)
        try:
            yield browser
        finally:
            browser.close()
