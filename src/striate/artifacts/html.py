"""Self-contained HTML: one file that opens anywhere and can be mailed.

Everything a page needs is inside it: pictures as base64 ``data:`` URIs, the style sheet
inline, no scripts, fonts or links to fetch. Text is always escaped (:func:`escape`), and
pages are written atomically (:func:`write_html`).

Besides the page frame (:func:`page`, :func:`section`, :func:`figure`, :func:`key_value_table`)
this module colours text character by character (:func:`text_heatmap`), the form in which
a recurrent unit's activity over a passage is easiest to read: one ``<span>`` per character,
its background the unit's value, its tooltip the number.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from striate.atomic import write_text

__all__ = [
    "SCALES",
    "colour",
    "data_uri",
    "escape",
    "figure",
    "heat_grid",
    "key_value_table",
    "legend",
    "page",
    "section",
    "text_heatmap",
    "write_html",
]

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif;
       margin: 24px auto; max-width: 1180px; padding: 0 16px; color: #1d1d1f; line-height: 1.4; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.25em; border-bottom: 1px solid #ddd; padding-bottom: 4px; margin-top: 1.8em; }
h3 { font-size: 1.05em; margin: 1.2em 0 0.4em; }
p.note { color: #666; font-size: 0.9em; }
table.kv { border-collapse: collapse; font-size: 0.9em; }
table.kv td { border-bottom: 1px solid #eee; padding: 2px 14px 2px 0; vertical-align: top; }
table.kv td.key { color: #555; white-space: nowrap; }
table.kv td.value { font-family: ui-monospace, Menlo, Consolas, monospace; word-break: break-all; }
figure { margin: 12px 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.85em; }
pre.sample { background: #f6f6f6; padding: 10px; white-space: pre-wrap; font-size: 0.85em;
             border-radius: 4px; }
.heat { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 11px;
        white-space: pre-wrap; line-height: 1.45; word-break: break-all; }
.heat-grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(540px, 1fr));
             gap: 6px 14px; }
.heat-row { margin: 4px 0; min-width: 0; }
.heat-label { font-size: 0.8em; color: #444; margin-bottom: 2px; }
.heat-text { border: 1px solid #e4e4e4; padding: 4px; }
.heat .nl { color: #999; }
.legend { display: inline-flex; align-items: center; gap: 6px; font-size: 0.8em; color: #444;
          margin-right: 24px; }
.legend .bar { display: inline-block; width: 160px; height: 12px; border: 1px solid #ccc; }
"""

# colour scales for text_heatmap: value range -> white ... full colour
SCALES: dict[str, dict[str, Any]] = {
    "signed": {"range": (-1.0, 1.0), "low": (33, 102, 172), "high": (203, 45, 42)},
    "unit": {"range": (0.0, 1.0), "low": (255, 255, 255), "high": (35, 139, 69)},
}
_STRENGTH = 0.85  # the strongest colour mixes this much into white, so text stays readable


def escape(text: Any) -> str:
    """``<``, ``>``, ``&`` and both quotes made safe for text and attribute values."""
    return html.escape(str(text), quote=True)


def data_uri(data: bytes | str | Path, mime: str = "image/png") -> str:
    """A ``data:`` URI holding the bytes (or the file at a path), base64-encoded."""
    raw = Path(data).read_bytes() if isinstance(data, str | Path) else data
    return f"data:{mime};base64,{base64.b64encode(raw).decode('ascii')}"


def figure(image: bytes | str | Path, caption: str = "", alt: str = "") -> str:
    """An embedded PNG with an optional caption (plain text, escaped)."""
    cap = f"<figcaption>{escape(caption)}</figcaption>" if caption else ""
    return f'<figure><img src="{data_uri(image)}" alt="{escape(alt or caption)}">{cap}</figure>'


def section(title: str, body: str, level: int = 2) -> str:
    """A heading (escaped) followed by ``body`` (HTML, as is)."""
    return f"<section><h{level}>{escape(title)}</h{level}>\n{body}\n</section>"


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def key_value_table(rows: Iterable[tuple[str, Any]]) -> str:
    """A two-column table of keys and values, both escaped."""
    cells = "".join(
        f'<tr><td class="key">{escape(k)}</td>'
        f'<td class="value">{escape(_format_value(v))}</td></tr>'
        for k, v in rows
    )
    return f'<table class="kv">{cells}</table>'


def page(title: str, body: str, extra_css: str = "") -> str:
    """A whole HTML document: UTF-8, the inline style sheet, an escaped title, ``body``."""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)}</title>\n<style>{STYLE}{extra_css}</style>\n</head>\n"
        f"<body>\n{body}\n</body>\n</html>\n"
    )


def write_html(target: str | Path, document: str) -> Path:
    """Write ``document`` to ``target`` atomically; returns the path."""
    target = Path(target)
    write_text(target, document)
    return target


def colour(value: float, scale: str = "signed") -> str:
    """The background for ``value`` on a scale of :data:`SCALES`, as ``#rrggbb``.

    ``signed``: -1 blue, 0 white, +1 red; ``unit``: 0 white, 1 green. Values outside the
    range are clipped; NaN is grey.
    """
    spec = SCALES[scale]
    if not math.isfinite(value):
        return "#cccccc"
    low, high = spec["range"]
    if scale == "signed":
        amount = min(1.0, abs(value) / high)
        target = spec["high"] if value > 0 else spec["low"]
    else:
        amount = min(1.0, max(0.0, (value - low) / (high - low)))
        target = spec["high"]
    mix = amount * _STRENGTH
    rgb = (round(255 + (c - 255) * mix) for c in target)
    return "#" + "".join(f"{c:02x}" for c in rgb)


def legend(scale: str, label: str = "") -> str:
    """A small colour bar for a scale, with its end values."""
    low, high = SCALES[scale]["range"]
    stops = [low + (high - low) * k / 8 for k in range(9)]
    gradient = ", ".join(colour(v, scale) for v in stops)
    text = f"{escape(label)} " if label else ""
    return (
        f'<span class="legend">{text}{low:g}<span class="bar" '
        f'style="background: linear-gradient(to right, {gradient})"></span>{high:g}</span>'
    )


def _visible(ch: str) -> str:
    """How a character is drawn in a heat row: whitespace made visible, the rest escaped."""
    if ch == "\n":
        return '<span class="nl">↵</span>'
    if ch == "\t":
        return "→   "
    if ch == "\r":
        return "␍"
    if not ch.isprintable() and ch != " ":
        return "·"
    return escape(ch)


def heat_grid(rows: Sequence[str]) -> str:
    """Heat rows (:func:`text_heatmap`) side by side, as many per line as the page is wide."""
    return f'<div class="heat-grid">{"".join(rows)}</div>'


def text_heatmap(
    text: str,
    values: Sequence[float],
    scale: str = "signed",
    shown: Sequence[float] | None = None,
    label: str = "",
) -> str:
    """One row: ``text`` with one ``<span class="ch">`` per character, coloured by ``values``.

    ``values`` (one per character) pick the colour on ``scale``; ``shown`` (default the same)
    are the numbers in each character's tooltip. A newline is drawn as ``↵`` and then breaks
    the line. ``label`` (escaped) heads the row.
    """
    if len(values) != len(text) or (shown is not None and len(shown) != len(text)):
        raise ValueError("one value per character is needed")
    shown = values if shown is None else shown
    spans = []
    for ch, value, number in zip(text, values, shown, strict=True):
        span = (
            f'<span class="ch" style="background:{colour(float(value), scale)}" '
            f'title="{float(number):+.3f}">{_visible(ch)}</span>'
        )
        spans.append(span + ("\n" if ch == "\n" else ""))
    return (
        f'<div class="heat-row"><div class="heat-label">{escape(label)}</div>'
        f'<div class="heat heat-text">{"".join(spans)}</div></div>'
    )
