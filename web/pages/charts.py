"""History charts drawn server-side with matplotlib, as inline SVG a page can theme.

The page's Content-Security-Policy allows no inline styles, so matplotlib's ``style``
attributes become SVG presentation attributes, and colours become classes the stylesheet
fills in (so the charts follow the light or dark theme). Every chart carries a ``<title>``
and ``<desc>``; the page puts the same numbers in a table beside it.
"""

from __future__ import annotations

import hashlib
import io
import re
import threading
import xml.etree.ElementTree as ET
from dataclasses import dataclass

import matplotlib
from cachetools import LRUCache

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from markupsafe import Markup

from recommender.history import PersonHistory, SessionPoint, TagEffect

SVG_NS = "http://www.w3.org/2000/svg"
XLINK_NS = "http://www.w3.org/1999/xlink"

# Stand-in colours drawn by matplotlib, swapped for classes the stylesheet colours.
ROLES = {"#010101": "ink", "#020202": "faint", "#030303": "before", "#040404": "after",
         "#050505": "bar"}
PRESENTATION = {
    "fill", "fill-opacity", "stroke", "stroke-width", "stroke-opacity", "stroke-linecap",
    "stroke-linejoin", "stroke-dasharray", "stroke-dashoffset", "stroke-miterlimit",
    "opacity", "font-size", "font-weight", "font-style", "text-anchor", "clip-path",
}
FONT_SIZE = 12
MIN_SLOTS = 6  # a first session or two should not fill the whole width


@dataclass(frozen=True)
class Chart:
    """One chart: its id (for aria), title, description and the SVG markup."""

    id: str
    title: str
    desc: str
    svg: Markup


def _figure(width: float = 4.8, height: float = 2.9):
    fig, ax = plt.subplots(figsize=(width, height), facecolor="none")
    ax.set_facecolor("none")
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    for side in ("left", "bottom"):
        ax.spines[side].set_color("#020202")
    ax.tick_params(colors="#010101", labelsize=FONT_SIZE, length=0, pad=6)
    ax.grid(axis="y", color="#020202", linewidth=0.6)
    ax.set_axisbelow(True)
    return fig, ax


def _style_to_attributes(element: ET.Element) -> None:
    classes = [c for c in element.get("class", "").split() if c]
    style = element.attrib.pop("style", "")
    for declaration in style.split(";"):
        if ":" not in declaration:
            continue
        name, value = (part.strip() for part in declaration.split(":", 1))
        if name in ("fill", "stroke") and value.lower() in ROLES:
            classes.append(f"{name}-{ROLES[value.lower()]}")
        elif name in ("fill", "stroke") and value.lower() == "#ffffff":
            element.set(name, "none")
        elif name in PRESENTATION:
            element.set(name, value)
    for name in ("fill", "stroke"):
        value = element.get(name, "").lower()
        if value in ROLES:
            del element.attrib[name]
            classes.append(f"{name}-{ROLES[value]}")
    if classes:
        element.set("class", " ".join(dict.fromkeys(classes)))


def _svg(fig, chart_id: str, title: str, desc: str) -> Markup:
    buffer = io.StringIO()
    with plt.rc_context({"svg.fonttype": "none", "svg.hashsalt": chart_id}):
        fig.savefig(buffer, format="svg", bbox_inches="tight", pad_inches=0.08,
                    metadata={"Date": None, "Creator": None})
    plt.close(fig)
    root = ET.fromstring(buffer.getvalue())
    for tag in ("metadata", "style"):
        for parent in root.iter():
            for child in list(parent):
                if child.tag == f"{{{SVG_NS}}}{tag}":
                    parent.remove(child)
    for element in root.iter():
        _style_to_attributes(element)
        if element.get("id"):
            element.set("id", f"{chart_id}-{element.get('id')}")
        href = element.get(f"{{{XLINK_NS}}}href")
        if href and href.startswith("#"):
            element.set(f"{{{XLINK_NS}}}href", f"#{chart_id}-{href[1:]}")
        clip = element.get("clip-path")
        if clip:
            element.set("clip-path", re.sub(r"url\(#", f"url(#{chart_id}-", clip))
    # Drawn at its natural size (points to CSS pixels), so text is the same size in every
    # chart; the stylesheet lets it shrink to fit a phone.
    _, _, width, height = (float(v) for v in root.get("viewBox").split())
    root.set("width", f"{width * 4 / 3:.0f}")
    root.set("height", f"{height * 4 / 3:.0f}")
    root.set("role", "img")
    root.set("class", "chart")
    root.set("aria-labelledby", f"{chart_id}-title {chart_id}-desc")
    title_el = ET.Element(f"{{{SVG_NS}}}title", id=f"{chart_id}-title")
    title_el.text = title
    desc_el = ET.Element(f"{{{SVG_NS}}}desc", id=f"{chart_id}-desc")
    desc_el.text = desc
    root.insert(0, desc_el)
    root.insert(0, title_el)
    return Markup(ET.tostring(_plain_names(root), encoding="unicode"))


def _plain_names(root: ET.Element) -> ET.Element:
    """Unqualified tags and a literal ``xlink:href``, so serialising never depends on the
    process-wide namespace prefixes (other code registers its own default namespace)."""
    for element in root.iter():
        element.tag = element.tag.rsplit("}", 1)[-1]
        href = element.attrib.pop(f"{{{XLINK_NS}}}href", None)
        if href is not None:
            element.set("xlink:href", href)
    attributes = dict(root.attrib)
    root.attrib.clear()
    root.attrib.update({"xmlns": SVG_NS, "xmlns:xlink": XLINK_NS, **attributes})
    return root


def _date_ticks(ax, points: list[SessionPoint]) -> None:
    step = max(1, -(-len(points) // 6))
    positions = list(range(0, len(points), step))
    ax.set_xticks(positions, [points[i].created_at.strftime("%d %b") for i in positions])
    ax.set_xlim(-0.6, max(len(points), MIN_SLOTS) - 0.4)


def mood_chart(history: PersonHistory) -> Chart | None:
    """Mood before and after each rated session, joined by a line: how far it moved."""
    points = [p for p in history.timeline if p.mood_change is not None]
    if not points:
        return None
    fig, ax = _figure()
    xs = range(len(points))
    ax.vlines(xs, [p.mood_before for p in points], [p.mood_after for p in points],
              color="#020202", linewidth=2.2)
    ax.scatter(xs, [p.mood_before for p in points], s=46, color="#030303", zorder=3,
               label="before")
    ax.scatter(xs, [p.mood_after for p in points], s=58, color="#040404", zorder=4,
               label="after")
    ax.set_ylim(0.5, 10.5)
    ax.set_yticks([1, 4, 7, 10])
    _date_ticks(ax, points)
    legend = ax.legend(loc="upper left", bbox_to_anchor=(0, 1.2), ncol=2, frameon=False,
                       fontsize=FONT_SIZE, labelcolor="#010101", handletextpad=0.3)
    legend.set_in_layout(True)
    before = sum(p.mood_before for p in points) / len(points)
    after = sum(p.mood_after for p in points) / len(points)
    desc = (f"Across {len(points)} rated session{'s' * (len(points) != 1)}, your mood was "
            f"{before:.1f} out of 10 on average before and {after:.1f} after.")
    return Chart("chart-mood", "Mood before and after each session", desc,
                 _svg(fig, "chart-mood", "Mood before and after each session", desc))


def catharsis_chart(history: PersonHistory) -> Chart | None:
    """How much each rated session released, 1 to 5."""
    points = [p for p in history.timeline if p.catharsis is not None]
    if not points:
        return None
    fig, ax = _figure(height=2.5)
    ax.bar(range(len(points)), [p.catharsis for p in points], width=0.62, color="#050505")
    ax.set_ylim(0, 5.2)
    ax.set_yticks([1, 3, 5])
    _date_ticks(ax, points)
    mean = sum(p.catharsis for p in points) / len(points)
    desc = (f"Release after each of {len(points)} rated session"
            f"{'s' * (len(points) != 1)}, from 1 (a little) to 5 (a lot); "
            f"{mean:.1f} on average, {points[-1].catharsis} the last time.")
    return Chart("chart-catharsis", "Release after each session", desc,
                 _svg(fig, "chart-catharsis", "Release after each session", desc))


def effects_chart(effects: list[TagEffect]) -> Chart | None:
    """The moods and themes whose songs and films moved the person most."""
    if not effects:
        return None
    shown = list(reversed(effects))
    fig, ax = _figure(height=0.42 * len(shown) + 0.6)
    ax.barh(range(len(shown)), [round(e.score * 100) for e in shown], height=0.6,
            color="#050505")
    ax.set_yticks(range(len(shown)), [e.label for e in shown])
    ax.set_xlim(0, 100)
    ax.set_xticks([0, 50, 100], ["0%", "50%", "100%"])
    ax.grid(axis="y", visible=False)
    ax.grid(axis="x", color="#020202", linewidth=0.6)
    best = effects[0]
    desc = (f"Share of songs and films that brought tears or moved you, by mood and theme. "
            f"Strongest: {best.label}, {round(best.score * 100)}% over {best.reactions} "
            f"rating{'s' * (best.reactions != 1)}.")
    return Chart("chart-effects", "What moves you most", desc,
                 _svg(fig, "chart-effects", "What moves you most", desc))


# Drawing a long history's three charts takes about 0.3 s (305 rated sessions), and the
# history page is visited far more often than a rating changes it: each worker keeps the
# charts last drawn, by a digest of the numbers they are drawn from.
CHARTS_KEPT = 256
_drawn: LRUCache = LRUCache(CHARTS_KEPT)
_drawn_lock = threading.Lock()


def _chart_key(history: PersonHistory) -> bytes:
    numbers = ([(p.created_at.isoformat(), p.mood_before, p.mood_after, p.catharsis)
                for p in history.timeline],
               [(e.label, e.reactions, e.cried, e.moved) for e in history.effects])
    return hashlib.sha256(repr(numbers).encode()).digest()


def history_charts(history: PersonHistory) -> list[Chart]:
    """The history page's charts (those with something to show), drawn once per worker for
    the same numbers."""
    key = _chart_key(history)
    with _drawn_lock:
        kept = _drawn.get(key)
    if kept is not None:
        return list(kept)
    charts = [mood_chart(history), catharsis_chart(history), effects_chart(history.effects)]
    drawn = tuple(c for c in charts if c is not None)
    with _drawn_lock:
        _drawn[key] = drawn
    return list(drawn)
