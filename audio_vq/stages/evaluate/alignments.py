"""Phone alignments: read them in the formats aligners write, and label unit frames with them.

Formats read by :func:`read_alignment` (detected from the content, not the extension):

- Praat TextGrid (Montreal Forced Aligner's output), long and short text formats, UTF-8 or
  UTF-16 (with a BOM, or detected from its NUL bytes). The tier named ``phones`` (any case) is
  used, else one whose name ends in it (MFA's ``<speaker> - phones``), else the last IntervalTier.
- HTK / Festival label files, one segment per line: ``start end phone`` (HTK ``.lab``, the
  synthetic corpus of this repo), ``end phone``, or Festival's ``end 125 phone`` after a header
  that ends with a line holding only ``#``. Times are seconds, or HTK's 100 ns units: see
  :func:`read_alignment` for how the unit is told apart.

:func:`read_frame_label_file` reads fairseq's frame labels (``uid<TAB>ph1,ph2,...``, 100 Hz by
default). :func:`frame_labels` turns either kind into one label per unit frame by the repo's frame
convention: unit frame i covers samples [i * hop, (i + 1) * hop), so its centre is at
(i + 0.5) / frame_rate seconds, and it takes the phone whose interval holds that centre.

Labels are kept as written (only empty ones are dropped); deciding what counts as silence is
the caller's business, through the ``silences`` set of :func:`frame_labels`.
"""

from __future__ import annotations

import codecs
import math
import os
import re
from pathlib import Path
from typing import Iterable, NamedTuple, Protocol, Sequence

import numpy as np

# Labels that are silence, not phones, by default: :func:`frame_labels` maps them to None and
# :func:`.abx.abx_items` makes no item of them (they are the edge context). Empty; MFA's silence
# ("sil", "" in newer versions), short pause "sp" and spoken noise "spn"; Kaldi's LibriSpeech
# recipe's "SIL" and "SPN" (its silence phones: silence, and spoken noise / <UNK>); Kaldi's
# epsilon "<eps>"; Festival's pause "pau" (TIMIT's pause too); TIMIT's utterance-edge "h#" and
# epenthetic silence "epi". `audio-vq evaluate silence=[...]` replaces the set; its default in
# configs/inference/evaluate.yaml is this set (a test holds them equal).
DEFAULT_SILENCES = frozenset({"", "sil", "sp", "spn", "SIL", "SPN", "<eps>", "pau", "h#", "epi"})
FAIRSEQ_LABEL_RATE = 100.0  # Hz: fairseq's HuBERT phone frame labels are at 10 ms
# Integer times whose largest value exceeds this are HTK 100 ns units, not seconds: 10,000 s
# (2.8 h) is no utterance's length, while 10,000 x 100 ns = 1 ms is shorter than any utterance.
HTK_DETECTION_THRESHOLD = 10_000
HTK_UNITS_PER_SECOND = 10_000_000  # HTK times count 100 ns
TIMIT_UNITS_PER_SECOND = 16_000  # TIMIT's .phn files count samples at 16 kHz
# Frame centres closer than this to a segment boundary count as on it (and belong to the later
# segment): label files round times (the synthetic corpus to 0.1 us), so a centre that falls
# exactly on a boundary must not land on either side by rounding. 1 us is far below a sample.
TIME_EPSILON = 1e-6
ALIGNMENT_EXTENSIONS = (".textgrid", ".lab", ".phn", ".txt")  # folder lookup, in priority order
PHONES_TIER = "phones"
FESTIVAL_HEADER_END = "#"
_STRESS = re.compile(r"[0-9]")  # ARPAbet stress digits (AH0, AH1): fairseq strips them by default


class AlignmentError(ValueError):
    """An alignment that cannot be used. ``str(err)`` is one line: ``<path>[:<line>]: <reason>``."""

    def __init__(self, path: str | os.PathLike, reason: str, line: int | None = None):
        self.path = str(path)
        self.reason = reason
        self.line = line
        where = self.path if line is None else f"{self.path}:{line}"
        super().__init__(f"{where}: {reason}")


class Segment(NamedTuple):
    """One labelled interval, [start, end) in seconds."""

    start: float
    end: float
    phone: str


class FrameLabels(NamedTuple):
    """Frame-level labels at ``rate`` Hz: label j covers [j / rate, (j + 1) / rate) seconds."""

    labels: list[str]
    rate: float


Alignment = list[Segment] | FrameLabels  # one utterance's alignment, as load_alignments returns it


class _HasAlignment(Protocol):  # what load_alignments needs of a manifest Utterance
    id: str
    alignment: str | None


# --- reading ------------------------------------------------------------------------------------


def read_alignment(
    path: str | os.PathLike, units_per_second: float | None = None, strip_stress: bool = False
) -> list[Segment]:
    """The phone segments of a TextGrid or HTK/Festival label file, sorted by start.

    Label file times are read in seconds unless ``units_per_second`` is given. When it is not:
    times all written as integers whose largest exceeds ``HTK_DETECTION_THRESHOLD`` (10,000) are
    HTK 100 ns units (no utterance is 2.8 h long, and 10,000 x 100 ns = 1 ms is shorter than any
    utterance); otherwise (a decimal point anywhere, or small integers) seconds. A ``.phn`` file
    (TIMIT) with integer times counts samples at 16 kHz instead. ``strip_stress`` removes ARPAbet
    stress digits (``AH1`` -> ``AH``), as fairseq does. Raises AlignmentError naming the file
    and line when the file is missing, not text, or malformed.
    """
    path = Path(path)
    text = _read_text(path)
    if _is_textgrid(text):
        segments = _parse_textgrid(text, path)
    else:
        segments = _parse_label_file(text, path, units_per_second)
    if strip_stress:
        segments = [s._replace(phone=_STRESS.sub("", s.phone)) for s in segments]
    return sorted(segments, key=lambda s: s.start)


def _read_text(path: Path) -> str:
    """Decode a TextGrid / label file: UTF-16 with or without BOM (Praat writes it for non-ASCII
    labels), UTF-8 with or without BOM."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise AlignmentError(path, "file not found") from None
    except OSError as e:
        raise AlignmentError(path, f"unreadable ({e.strerror})") from None
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"
    elif len(raw) >= 2 and raw[0] == 0 and raw[1] != 0:  # ASCII text stored as UTF-16, no BOM
        encoding = "utf-16-be"
    elif len(raw) >= 2 and raw[1] == 0 and raw[0] != 0:
        encoding = "utf-16-le"
    else:
        encoding = "utf-8-sig"
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1 if encoding == "utf-8-sig" else None
        raise AlignmentError(path, f"not UTF-8 or UTF-16 text ({e.reason})", line) from None


def _is_textgrid(text: str) -> bool:
    head = text[:200]
    return "ooTextFile" in head or '"TextGrid"' in head or "ooBinaryFile" in head


# A Praat text file is a stream of values: numbers, "strings" ("" escapes a quote) and <flags>.
# The long format adds `name =` keys and `item [1]:` / `intervals [1]:` headings around them;
# skipping identifiers and [...] reads both formats with one tokenizer, as Praat itself does.
_PRAAT_TOKEN = re.compile(
    r"""
    (?P<string>"(?:[^"]|"")*")
  | (?P<comment>![^\n]*)
  | (?P<index>\[[^\]]*\])
  | (?P<flag><[a-z]+>)
  | (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
  | (?P<word>[A-Za-z_][A-Za-z_0-9?]*)
  | (?P<other>[^\s])
""",
    re.VERBOSE,
)


class _Tokens:
    """Values of a Praat text file, read in order, each with its line for error messages."""

    def __init__(self, text: str, path: Path):
        self.path = path
        self.items: list[tuple[str, str, int]] = []  # (kind, value, line)
        line = 1
        last = 0
        for m in _PRAAT_TOKEN.finditer(text):
            line += text.count("\n", last, m.start())
            last = m.start()
            kind = m.lastgroup
            if kind in ("string", "number", "flag"):
                value = m.group()[1:-1].replace('""', '"') if kind == "string" else m.group()
                self.items.append((kind, value, line))
        self.position = 0

    def _next(self, kind: str, what: str) -> tuple[str, int]:
        if self.position >= len(self.items):
            raise AlignmentError(self.path, f"TextGrid ends early: expected {what}")
        got, value, line = self.items[self.position]
        if got != kind:
            raise AlignmentError(self.path, f"TextGrid: expected {what}, found {value!r}", line)
        self.position += 1
        return value, line

    def string(self, what: str) -> str:
        return self._next("string", what)[0]

    def number(self, what: str) -> float:
        return float(self._next("number", what)[0])

    def count(self, what: str) -> int:
        value, line = self._next("number", what)
        if not value.isdigit():
            raise AlignmentError(self.path, f"TextGrid: {what} must be a count, found {value!r}", line)
        return int(value)

    def flag(self, what: str) -> str:
        return self._next("flag", what)[0]

    @property
    def line(self) -> int | None:
        return self.items[self.position][2] if self.position < len(self.items) else None


def _parse_textgrid(text: str, path: Path) -> list[Segment]:
    if "ooBinaryFile" in text[:200]:
        raise AlignmentError(path, "binary TextGrid: save it from Praat as a text file")
    tokens = _Tokens(text, path)
    if not tokens.string("file type").startswith("ooTextFile") or tokens.string("object class") != "TextGrid":
        raise AlignmentError(path, 'not a TextGrid (expected File type = "ooTextFile", Object class = "TextGrid")')
    tokens.number("xmin")
    tokens.number("xmax")
    if tokens.flag("tiers? <exists>") != "<exists>":
        raise AlignmentError(path, "TextGrid has no tiers")
    tiers: list[tuple[str, list[Segment]]] = []
    for _ in range(tokens.count("tier count")):
        kind, name = tokens.string("tier class"), tokens.string("tier name")
        tokens.number("tier xmin")
        tokens.number("tier xmax")
        size = tokens.count("interval count")
        if kind == "IntervalTier":
            segments = []
            for _ in range(size):
                line = tokens.line
                start, end = tokens.number("interval xmin"), tokens.number("interval xmax")
                label = tokens.string("interval text").strip()
                if end < start:
                    raise AlignmentError(path, f"interval ends ({end}) before it starts ({start})", line)
                if label:
                    segments.append(Segment(start, end, label))
            tiers.append((name, segments))
        elif kind == "TextTier":  # point tier: read past it
            for _ in range(size):
                tokens.number("point time")
                tokens.string("point mark")
        else:
            raise AlignmentError(path, f"TextGrid: unknown tier class {kind!r}", tokens.line)
    if not tiers:
        raise AlignmentError(path, "TextGrid has no IntervalTier")
    # MFA names the tier "phones", or "<speaker> - phones" in multi-speaker TextGrids
    names = [name.strip().lower() for name, _ in tiers]
    for match in (lambda n: n == PHONES_TIER, lambda n: n.endswith(PHONES_TIER)):
        chosen = [segments for name, (_, segments) in zip(names, tiers) if match(name)]
        if chosen:
            return chosen[0]
    return tiers[-1][1]


def _parse_label_file(text: str, path: Path, units_per_second: float | None) -> list[Segment]:
    """HTK / Festival label lines -> segments; see :func:`read_alignment` for the formats."""
    lines = text.splitlines()
    if lines and lines[0].strip().startswith("#!MLF!#"):
        raise AlignmentError(path, "HTK master label files are not supported: one label file per utterance", 1)
    festival = False
    first = 0
    for i, line in enumerate(lines):  # Festival: a header (separator, nfields, ...) ending in "#"
        if line.strip() == FESTIVAL_HEADER_END:
            festival, first = True, i + 1
            break
    rows: list[tuple[int, list[str]]] = []
    for lineno, line in enumerate(lines[first:], first + 1):
        fields = line.split()
        if not fields:
            continue
        if fields[0] in (".", "///"):  # HTK: end of the label list / start of the next level
            break
        rows.append((lineno, fields))
    if not rows:
        raise AlignmentError(path, "no labels")
    fmt = _label_format(rows, festival, path)
    times: list[list[str]] = []
    phones: list[str] = []
    for lineno, fields in rows:
        need = 2 if fmt == "end" else 3
        if len(fields) < need or not all(_is_number(f) for f in fields[: need - 1]):
            expected = {"end": "end_time phone", "end_x": "end_time x phone", "start_end": "start end phone"}[fmt]
            raise AlignmentError(
                path, f"expected '{expected}' like the lines before, got {_line_text(fields)!r}", lineno
            )
        times.append(fields[:1] if fmt in ("end", "end_x") else fields[:2])
        phones.append(fields[need - 1])  # HTK's optional score / word fields after it are ignored
    rate = units_per_second if units_per_second is not None else _units_per_second(times, path)
    segments = []
    previous_end = 0.0
    for (lineno, _), stamp, phone in zip(rows, times, phones):
        values = [float(t) / rate for t in stamp]  # divide: 4500000 / 1e7 is 0.45, * 1e-7 is not
        start, end = (previous_end, values[0]) if len(values) == 1 else values
        if end < start:
            raise AlignmentError(path, f"segment ends ({end:g} s) before it starts ({start:g} s)", lineno)
        previous_end = end
        segments.append(Segment(start, end, phone))
    return [s for s in segments if s.phone]


def _line_text(fields: Sequence[str]) -> str:
    return " ".join(fields)


def _is_number(field: str) -> bool:
    try:
        return math.isfinite(float(field))
    except ValueError:
        return False


def _label_format(rows: list[tuple[int, list[str]]], festival: bool, path: Path) -> str:
    """'end' (end phone), 'end_x' (Festival's end 125 phone) or 'start_end' (start end phone).

    The first line decides between two and three leading fields. Three fields mean
    ``end x phone`` after a Festival header, and also without one when the middle column is one
    constant over several lines while the first increases (as ``start end`` that would be
    overlapping segments all ending at one time); otherwise ``start end phone``.
    """
    lineno, fields = rows[0]
    if not _is_number(fields[0]):
        raise AlignmentError(path, f"expected a time first, got {_line_text(fields)!r}", lineno)
    if len(fields) < 3 or not _is_number(fields[1]):
        if len(fields) < 2:
            raise AlignmentError(
                path, f"expected 'end_time phone' or 'start end phone', got {_line_text(fields)!r}", lineno
            )
        return "end"
    if festival:
        return "end_x"
    if len(rows) >= 2 and all(len(f) >= 3 and _is_number(f[0]) and _is_number(f[1]) for _, f in rows):
        firsts = [float(f[0]) for _, f in rows]
        middles = {f[1] for _, f in rows}
        if len(middles) == 1 and all(b > a for a, b in zip(firsts, firsts[1:])):
            return "end_x"
    return "start_end"


def _units_per_second(times: list[list[str]], path: Path) -> float:
    """Written time units per second: 1, HTK's 1e7 (100 ns), or 16,000 (TIMIT .phn samples)."""
    stamps = [t for row in times for t in row]
    integers = all(re.fullmatch(r"[-+]?\d+", t) for t in stamps)
    if integers and path.suffix.lower() == ".phn":
        return TIMIT_UNITS_PER_SECOND
    if integers and max(int(t) for t in stamps) > HTK_DETECTION_THRESHOLD:
        return HTK_UNITS_PER_SECOND
    return 1.0


def read_frame_label_file(
    path: str | os.PathLike, rate: float = FAIRSEQ_LABEL_RATE, strip_stress: bool = False
) -> dict[str, FrameLabels]:
    """fairseq frame labels: ``uid<TAB>ph1,ph2,...`` per line (labels may also be separated by
    spaces) -> uid -> FrameLabels(labels, rate). ``rate`` is the label rate in Hz (fairseq's phone
    labels: 100). ``strip_stress`` removes stress digits, as fairseq's ``read_phn`` does by
    default. Raises AlignmentError naming the line on a malformed or duplicate entry."""
    path = Path(path)
    if rate <= 0:
        raise ValueError(f"label rate must be positive, got {rate}")
    out: dict[str, FrameLabels] = {}
    for lineno, line in enumerate(_read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        uid, sep, rest = line.partition("\t")
        if not sep:  # tolerate a space after the uid
            uid, _, rest = line.strip().partition(" ")
        uid, rest = uid.strip(), rest.strip()
        if not uid or not rest:
            raise AlignmentError(path, "expected 'uid<TAB>ph1,ph2,...'", lineno)
        labels = [x.strip() for x in (rest.split(",") if "," in rest else rest.split())]
        if strip_stress:
            labels = [_STRESS.sub("", x) for x in labels]
        if uid in out:
            raise AlignmentError(path, f"duplicate uid {uid!r}", lineno)
        out[uid] = FrameLabels(labels, float(rate))
    return out


# --- frames ---------------------------------------------------------------------------------------


def frame_centres(num_frames: int, frame_rate: float) -> np.ndarray:
    """(num_frames,) centre times in seconds of unit frames: (i + 0.5) / frame_rate."""
    return (np.arange(num_frames) + 0.5) / frame_rate


def frame_labels(
    alignment: Sequence[Segment] | FrameLabels,
    num_frames: int,
    frame_rate: float,
    silences: Iterable[str] = DEFAULT_SILENCES,
) -> list[str | None]:
    """The phone at the centre of each of ``num_frames`` unit frames at ``frame_rate`` Hz.

    Segments are half-open [start, end): a centre on a boundary belongs to the later segment.
    FrameLabels at another rate are resampled by centre time (label j covers [j, j + 1) / rate).
    None where nothing covers the centre (past the end, gaps) or the label is in ``silences``.
    """
    if frame_rate <= 0:
        raise ValueError(f"frame rate must be positive, got {frame_rate}")
    silences = frozenset(silences)
    centres = frame_centres(num_frames, frame_rate) + TIME_EPSILON
    if isinstance(alignment, FrameLabels):
        index = np.floor(centres * alignment.rate).astype(np.int64)
        labels = alignment.labels
        return [labels[j] if j < len(labels) and labels[j] not in silences else None for j in index]
    segments = sorted(alignment, key=lambda s: s.start)
    starts = np.array([s.start for s in segments])
    ends = np.array([s.end for s in segments])
    index = np.searchsorted(starts, centres, side="right") - 1  # last segment starting at or before
    out: list[str | None] = []
    for t, j in zip(centres, index):
        phone = segments[j].phone if j >= 0 and t < ends[j] else None
        out.append(None if phone in silences else phone)
    return out


def segments_from_frame_labels(labels: FrameLabels) -> list[Segment]:
    """Runs of equal frame labels as segments (for ABX items from fairseq frame labels)."""
    out: list[Segment] = []
    start = 0
    for j in range(1, len(labels.labels) + 1):
        if j == len(labels.labels) or labels.labels[j] != labels.labels[start]:
            out.append(Segment(start / labels.rate, j / labels.rate, labels.labels[start]))
            start = j
    return out


# --- a corpus' alignments -----------------------------------------------------------------------


def load_alignments(
    spec: str | os.PathLike | None,
    utterances: Iterable[_HasAlignment],
    strip_stress: bool = False,
    label_rate: float = FAIRSEQ_LABEL_RATE,
) -> dict[str, Alignment]:
    """Alignments of the given utterances, keyed by utterance id.

    ``spec`` is None (each utterance's manifest ``alignment`` path), a folder (searched
    recursively for ``<id>.TextGrid`` / ``.lab`` / ``.phn`` / ``.txt``, any case, keyed by file
    stem; when one id has several, the first extension of that list wins; two files with one
    name and extension in different subfolders are an error), or a fairseq frame-label file at
    ``label_rate`` Hz. Utterances without an alignment are absent from the result (the caller
    reports coverage); a named file that is missing or malformed raises AlignmentError.
    """
    utterances = list(utterances)
    if spec is None:
        return {u.id: read_alignment(u.alignment, strip_stress=strip_stress) for u in utterances if u.alignment}
    spec = Path(spec)
    if spec.is_file():
        wanted = {u.id for u in utterances}
        labels = read_frame_label_file(spec, label_rate, strip_stress)
        return {uid: lab for uid, lab in labels.items() if uid in wanted}
    if not spec.is_dir():
        raise AlignmentError(spec, "alignments not found (expected a folder or a frame-label file)")
    found = _index_folder(spec, {u.id for u in utterances})
    return {u.id: read_alignment(found[u.id], strip_stress=strip_stress) for u in utterances if u.id in found}


def _index_folder(root: Path, ids: set[str]) -> dict[str, Path]:
    """id -> alignment file under ``root``, by extension priority (ALIGNMENT_EXTENSIONS)."""
    best: dict[str, tuple[int, Path]] = {}
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            path = Path(dirpath) / name
            ext = path.suffix.lower()
            if path.stem not in ids or ext not in ALIGNMENT_EXTENSIONS:
                continue
            rank = ALIGNMENT_EXTENSIONS.index(ext)
            if path.stem in best and best[path.stem][0] == rank:
                raise AlignmentError(path, f"two alignments for {path.stem!r}: also {best[path.stem][1]}")
            if path.stem not in best or rank < best[path.stem][0]:
                best[path.stem] = (rank, path)
    return {uid: p for uid, (_, p) in best.items()}
