"""Session exports as files for other players: M3U8, XSPF, CSV and Letterboxd's import CSV."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from urllib.parse import quote
from xml.etree import ElementTree as ET

from recommender.store.models import CrySession

FILE_TARGETS = ("m3u8", "xspf", "csv", "letterboxd")


@dataclass(frozen=True)
class ExportFile:
    content: str
    mimetype: str
    filename: str


def _slug(session: CrySession) -> str:
    return f"goodcry-{session.created_at:%Y-%m-%d}-{session.id}"


def _search_uri(title: str, artist: str | None) -> str:
    return "https://open.spotify.com/search/" + quote(f"{title} {artist or ''}".strip())


def to_m3u8(session: CrySession) -> ExportFile:
    """Songs in session order with their durations (films are not playable tracks)."""
    lines = ["#EXTM3U", f"#PLAYLIST:goodcry session {session.created_at:%Y-%m-%d}"]
    for si in session.items:
        item = si.item
        if item.kind != "song":
            continue
        lines.append(f"#EXTINF:{item.duration_s},{item.artist} - {item.title}")
        lines.append(item.spotify_uri or _search_uri(item.title, item.artist))
    return ExportFile("\n".join(lines) + "\n", "audio/x-mpegurl", f"{_slug(session)}.m3u8")


def to_xspf(session: CrySession) -> ExportFile:
    """Songs as an XSPF playlist (the namespace is written on the root element itself, so
    nothing process-wide such as ElementTree's prefix registry is touched)."""
    root = ET.Element("playlist", {"version": "1", "xmlns": "http://xspf.org/ns/0/"})
    ET.SubElement(root, "title").text = f"goodcry session {session.created_at:%Y-%m-%d}"
    tracks = ET.SubElement(root, "trackList")
    for si in session.items:
        item = si.item
        if item.kind != "song":
            continue
        track = ET.SubElement(tracks, "track")
        ET.SubElement(track, "location").text = (
            item.spotify_uri or _search_uri(item.title, item.artist))
        ET.SubElement(track, "title").text = item.title
        ET.SubElement(track, "creator").text = item.artist or ""
        ET.SubElement(track, "duration").text = str(item.duration_s * 1000)
    body = ET.tostring(root, encoding="unicode")
    return ExportFile('<?xml version="1.0" encoding="UTF-8"?>\n' + body + "\n",
                      "application/xspf+xml", f"{_slug(session)}.xspf")


def to_csv(session: CrySession) -> ExportFile:
    """The whole session, films included, with phases and prompts."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["position", "phase", "kind", "title", "artist", "director", "year",
                     "duration_s", "tags", "technique", "prompt", "why", "spotify_uri"])
    for si in session.items:
        item = si.item
        writer.writerow([si.position, si.phase, item.kind, item.title, item.artist or "",
                         item.director or "", item.year or "", item.duration_s,
                         ";".join(item.tag_list), si.technique, si.prompt_text, si.why,
                         item.spotify_uri or ""])
    return ExportFile(buf.getvalue(), "text/csv", f"{_slug(session)}.csv")


def to_letterboxd(session: CrySession) -> ExportFile:
    """The session's films in Letterboxd's import format (Title, Year, Directors)."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["Title", "Year", "Directors"])
    for si in session.items:
        item = si.item
        if item.kind == "film":
            writer.writerow([item.title, item.year or "", item.director or ""])
    return ExportFile(buf.getvalue(), "text/csv", f"{_slug(session)}-letterboxd.csv")


def export_file(session: CrySession, target: str) -> ExportFile:
    builders = {"m3u8": to_m3u8, "xspf": to_xspf, "csv": to_csv, "letterboxd": to_letterboxd}
    return builders[target](session)
