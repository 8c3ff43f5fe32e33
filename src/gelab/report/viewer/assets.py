"""The page assets of the site: ``index.html``, ``viewer.js`` and ``viewer.css`` from ``static/``.

Everything is local: no CDN, no web font, no request to anything but files beside ``index.html``.
"""

from __future__ import annotations

from pathlib import Path

STATIC = Path(__file__).with_name("static")
FILES = {"index.html": "index.html", "viewer.js": "assets/viewer.js", "viewer.css": "assets/viewer.css"}


def asset_files() -> dict[str, bytes]:
    """site path -> content of every shipped asset."""
    return {dest: (STATIC / src).read_bytes() for src, dest in FILES.items()}
