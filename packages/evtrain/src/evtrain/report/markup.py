"""Small HTML building blocks: escaping, attributes, data URIs. Every piece of text goes through ``esc``."""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping


def esc(value: object) -> str:
    """``value`` as HTML text, safe inside elements and quoted attributes (``<``, ``>``, ``&``, quotes)."""
    return html.escape(str(value), quote=True)


def attributes(values: Mapping[str, object | None]) -> str:
    """`` name="value"`` pairs (escaped); ``None`` and ``False`` drop the attribute, ``True`` writes it bare."""
    parts = []
    for name, value in values.items():
        if value is None or value is False:
            continue
        parts.append(f" {name}" if value is True else f' {name}="{esc(value)}"')
    return "".join(parts)


def tag(name: str, content: str = "", /, **attrs: object | None) -> str:
    """``<name attrs>content</name>``; ``content`` is trusted markup, attribute names use ``_`` for ``-``
    and a trailing ``_`` for reserved words (``class_``)."""
    rendered = attributes({key.rstrip("_").replace("_", "-"): value for key, value in attrs.items()})
    return f"<{name}{rendered}>{content}</{name}>"


def png_data_uri(data: bytes) -> str:
    """A ``data:image/png;base64,...`` URI, so the page needs no file beside it."""
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def percent(value: float | None, digits: int = 1) -> str:
    """``12.3`` for a percentage, an en dash when there is none."""
    return "–" if value is None else f"{value:.{digits}f}"


def bar(value: float | None, maximum: float = 100.0, kind: str = "") -> str:
    """A horizontal CSS bar for a value in ``[0, maximum]`` (empty when there is no value)."""
    if value is None or maximum <= 0:
        return ""
    width = max(0.0, min(100.0, 100.0 * value / maximum))
    return tag("span", tag("span", style=f"width:{width:.1f}%"), class_=f"bar {kind}".strip())
