"""The report as one HTML file: the page, its style and script, plotly.js and the data, all inline.

Nothing is fetched when the page opens (a Content-Security-Policy forbids it too): plotly.js comes
from the installed ``plotly`` package, the rest from this package's ``static`` folder.
"""
from __future__ import annotations

import base64
import gzip
import html
import json
import re
from importlib import resources
from typing import Any, Mapping

from .._version import __version__

__all__ = ["plotly_js", "script_json", "packed_json", "render_html", "read_page_data"]

_TOKEN = re.compile(r"@@(VERSION|TITLE|STYLE|PLOTLY|DATA|CONVERSATIONS|SCRIPT)@@")
_DATA = re.compile(r'<script type="application/json" id="teamgraph-data">(.*?)</script>', re.S)
_CONVERSATIONS = re.compile(r'<script type="application/octet-stream" id="teamgraph-conversations"[^>]*>(.*?)</script>', re.S)


def _static(name: str) -> str:
    return resources.files(__package__).joinpath("static", name).read_text(encoding="utf-8")


def plotly_js() -> str:
    """plotly.js as shipped by the installed ``plotly`` package (its offline bundle)."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs().replace("</script", "<\\/script")  # same JavaScript, cannot close the tag


def script_json(data: Any) -> str:
    """``data`` as JSON that is safe inside ``<script type="application/json">``.

    ``<``, ``>`` and ``&`` become ``\\u003c``, ``\\u003e``, ``\\u0026`` (so no ``</script>`` or ``<!--``
    in the data can end or change the element), as do the line separators U+2028/U+2029;
    ``JSON.parse`` reads them back as the same characters.
    """
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def packed_json(data: Any) -> str:
    """``data`` as gzip-compressed JSON in base64 (no date in the gzip header: same data, same text).

    The page keeps the conversations so, about a third of their JSON, and unpacks them with the
    browser's ``DecompressionStream`` after the first graph is drawn.
    """
    raw = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")
    return base64.b64encode(gzip.compress(raw, compresslevel=6, mtime=0)).decode("ascii")


def render_html(document: Mapping[str, Any]) -> str:
    """The page of ``document`` (:func:`teamgraph.report.report_document` with each view's ``figure``).

    The conversations go into an element of their own, packed (:func:`packed_json`); the rest is
    JSON in ``<script type="application/json">`` (:func:`script_json`).
    """
    conversations = document.get("conversations") or {}
    data = {k: v for k, v in document.items() if k != "conversations"}
    data["n_conversations"] = len(conversations)
    parts = {
        "VERSION": html.escape(__version__),
        "TITLE": html.escape(str(document.get("title") or "teamgraph report")),
        "STYLE": _static("report.css"),
        "PLOTLY": plotly_js(),
        "DATA": script_json(data),
        "CONVERSATIONS": packed_json(conversations),
        "SCRIPT": _static("report.js"),
    }
    return _TOKEN.sub(lambda m: parts[m.group(1)], _static("report.html"))  # one pass: inserted text is not rescanned


def read_page_data(page: str) -> dict[str, Any]:
    """The data of a report page (what :func:`render_html` put in), conversations unpacked: for tests and tools."""
    data, packed = _DATA.search(page), _CONVERSATIONS.search(page)
    if data is None or packed is None:
        raise ValueError("not a teamgraph report page (no data elements)")
    document = json.loads(data.group(1))
    document["conversations"] = json.loads(gzip.decompress(base64.b64decode(packed.group(1).strip())))
    return document
