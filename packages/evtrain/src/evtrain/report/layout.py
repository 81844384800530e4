"""The frame every report page shares: the HTML document (inline style, optional script) and the title band.

The run page (``evtrain.report.page``) and evsearch's study page are both built in it.
"""

from __future__ import annotations

from collections.abc import Sequence

from evtrain.report.assets import SCRIPT, STYLE
from evtrain.report.markup import esc, tag


def document(title: str, header: str, body: str, *, script: bool = False) -> str:
    """A complete HTML page with the inline stylesheet (and the filter script when asked)."""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        # The page loads nothing: inline style and script only, images as data URIs.
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'\">\n"
        f"<title>{esc(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        f"{header}\n<main>\n{body}\n</main>\n" + (f"<script>{SCRIPT}</script>\n" if script else "") + "</body>\n</html>\n"
    )


def page_header(title: str, subtitle: str, chips: Sequence[tuple[str, bool]], nav: Sequence[tuple[str, str]]) -> str:
    """The dark title band: title, subtitle, chips (``(text, is_warning)``) and section links."""
    chip_html = "".join(tag("span", esc(text), class_="chip warn" if warn else "chip") for text, warn in chips)
    nav_html = "".join(tag("a", esc(label), href=f"#{anchor}") for anchor, label in nav)
    return tag(
        "header",
        tag(
            "div",
            tag("h1", esc(title)) + tag("div", esc(subtitle)) + tag("div", chip_html, class_="chips") + tag("nav", nav_html, class_="toc"),
            class_="inner",
        ),
        class_="page",
    )
