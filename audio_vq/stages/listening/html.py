"""``index.html``: a static page of the test's stimuli, utterances x systems, with audio players.

For quick listening and demo pages, not for the test itself: it names the systems (it is not
blinded). Links are relative, so the page works opened from disk (file://) or from any static
web server, with the folder moved anywhere.
"""

from __future__ import annotations

import os
from html import escape
from pathlib import Path

from ...atomic import atomic_write_text
from .key import ANCHOR35, ANCHOR70, CONVERSION, HIDDEN_REFERENCE, ORIGINAL, RECONSTRUCTION, KeyRow

HTML_NAME = "index.html"
FIRST_COLUMNS = (ORIGINAL, RECONSTRUCTION, CONVERSION)  # then other systems, then the anchors
LAST_COLUMNS = (ANCHOR70, ANCHOR35)

STYLE = """body { font-family: sans-serif; margin: 2em; }
table { border-collapse: collapse; }
th, td { border: 1px solid #ccc; padding: 0.4em; vertical-align: top; text-align: left; }
td .label { font-size: 0.8em; color: #555; }
audio { width: 14em; display: block; }"""


def columns(rows: list[KeyRow]) -> list[str]:
    """Systems in display order: the original, the model's, other systems (as first seen), anchors."""
    seen = list(dict.fromkeys(r.system for r in rows if r.role != HIDDEN_REFERENCE))
    middle = [s for s in seen if s not in FIRST_COLUMNS + LAST_COLUMNS]
    return [s for s in FIRST_COLUMNS if s in seen] + middle + [s for s in LAST_COLUMNS if s in seen]


def cells(rows: list[KeyRow]) -> dict[tuple[str, str], list[KeyRow]]:
    """(utterance, system) -> its files, one per decoded speaker (an AB test holds copies of a
    stimulus in several pairs: the first is shown)."""
    out: dict[tuple[str, str], list[KeyRow]] = {}
    shown = set()
    for r in rows:
        what = (r.utterance, r.system, r.target_speaker)
        if r.role == HIDDEN_REFERENCE or what in shown:
            continue
        shown.add(what)
        out.setdefault((r.utterance, r.system), []).append(r)
    return out


def render(rows: list[KeyRow], title: str, kind: str, base: str = "") -> str:
    systems = columns(rows)
    table = cells(rows)
    utterances = list(dict.fromkeys((r.utterance, r.speaker) for r in rows))
    head = "".join(f"<th>{escape(s)}</th>" for s in systems)
    body = []
    for utt, speaker in utterances:
        tds = []
        for system in systems:
            players = "".join(_player(r, base) for r in table.get((utt, system), []))
            tds.append(f"<td>{players}</td>")
        body.append(f'<tr><th>{escape(utt)}<br><span class="label">{escape(speaker)}</span></th>{"".join(tds)}</tr>')
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{escape(title)}</title>\n'
        f"<style>\n{STYLE}\n</style>\n</head>\n<body>\n<h1>{escape(title)}</h1>\n"
        f"<p>Stimuli of a {escape(kind)} listening test, by utterance and system. This page names the "
        "systems: it is for listening and demos, not for running the test (install serve/ in webMUSHRA or "
        "BeaqleJS).</p>\n"
        f"<table>\n<tr><th>utterance</th>{head}</tr>\n" + "\n".join(body) + "\n</table>\n</body>\n</html>\n"
    )


def _player(r: KeyRow, base: str) -> str:
    label = f'<span class="label">&rarr; {escape(r.target_speaker)}</span>' if r.system == CONVERSION else ""
    return f'{label}<audio controls preload="auto" src="{escape(base + r.file, quote=True)}"></audio>'


def write_page(folder: str | os.PathLike, rows: list[KeyRow], title: str, kind: str, base: str = "") -> Path:
    """``<folder>/index.html``; ``base`` is the stimuli's folder relative to it (key paths follow)."""
    return atomic_write_text(Path(folder) / HTML_NAME, render(rows, title, kind, base))
