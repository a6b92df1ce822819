"""Unit files: the contract between extraction and every downstream consumer.

Formats (``format=``), each with the sidecar ``<output>.meta.json`` (:class:`UnitsMeta`):

    gslm        one file, a line per utterance: ``id|u1 u2 ...`` (fairseq GSLM style)
    textless    ``<stem>.units`` / ``<stem>.durations`` / ``<stem>.ids``: line-aligned, one
                utterance per line, space-separated (textlesslib style; .ids keeps the names)
    jsonl       one JSON object per line: {id, units, durations?, frame_rate, num_samples}
    npz         one archive: ids (N,), units (total,), offsets (N + 1,), num_samples (N,),
                durations (total,) when deduplicated; utterance i is units[offsets[i]:offsets[i + 1]]
    zerospeech  a folder of ``<id>.txt``, a row per frame holding that frame's codebook vector
                (ZeroSpeech's feature-file layout, what ABX tools read)

Several codebooks (``num_codebooks`` Q > 1 in meta.json, ``format_version`` 2: residual levels
or a hierarchy's top and bottom; every level at the finest frame rate, ``frame_rates`` giving
each level's own rate, a coarser level's code held for the frames it spans). A record's units
are then (Q, n):

    gslm        Q lines per utterance, in level order, the id suffixed ``_q0`` .. ``_q<Q-1>``
    textless    the same in .units and .ids; .durations repeats the utterance's line per level,
                so every line i of the three files is still one (utterance, level)
    jsonl       ``units`` a list per level, [[...], [...]]; ``durations`` one list
    npz         units (Q, total); offsets, num_samples and durations as with one codebook
    zerospeech  a row per frame holding the Q level vectors side by side (Q * D values), so
                that each level's code reads back exactly

With one codebook nothing of this appears: meta.json has no ``num_codebooks`` and says
``format_version`` 1, and every file is what version 1 wrote.

The pitch stream (``extract pitch_bins=N``) is the last level of such a file: meta.json says
``pitch_bins`` N, and that level's codes are the speaker-normalised log F0 of each frame
quantised to N bins, 1..N, with 0 for unvoiced frames (:func:`audio_vq.pitch.quantise`). It has
no codebook vectors, so zerospeech cannot hold it.

Units are frame-level unless the meta says ``deduplicated`` (then runs of one code (of one
frame, every level equal) are collapsed and ``durations`` count frames; textless is always
deduplicated). Readers detect the format (meta.json, else the path's shape and contents) and
whether text lines carry ids (``id|u1 u2``) or are bare (``u1 u2``: ids are line numbers from 0,
or a sibling .ids file).
``dict.km.txt`` is fairseq's dictionary of K units (``<unit> 1`` per line).

Every writer streams (bounded memory on any corpus size) into temporary names and renames them
into place at ``close()``; meta.json is written last, so its presence means the output is whole.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import zipfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import ClassVar, Iterable, Iterator

import numpy as np

from ..atomic import atomic_path, atomic_write_text
from ..config import optional_import
from ..outputs import inside, name_problem
from .extraction import deduplicate, expand

FORMAT_VERSION = 1  # what one codebook writes
LEVELS_FORMAT_VERSION = 2  # several codebooks: num_codebooks, frame_rates, the level layouts
LEVEL_SUFFIX = "_q"  # gslm / textless: the id of level l's line is <id>_q<l>
META_SUFFIX = ".meta.json"
DICT_NAME = "dict.km.txt"
ZEROSPEECH_DECIMALS = 6  # float32 codebook rows keep ~7 significant digits
NPZ_DTYPE = "<i4"  # units and durations in .npz: int32 (any K, runs of up to 2^31 frames)
COPY_BLOCK_BYTES = 1 << 22


class UnitFormatError(ValueError):
    """A unit file that cannot be read: names the file (and line) and the reason."""


@dataclass
class UnitsMeta:
    """The sidecar of every unit file."""

    format: str
    frame_rate: float | None
    codebook_size: int | None
    sample_rate: int | None
    model_checksum: str | None
    deduplicated: bool
    num_utterances: int = 0
    format_version: int = FORMAT_VERSION
    extra: dict = field(default_factory=dict)  # e.g. the model directory, skipped count
    num_codebooks: int = 1  # Q: levels per frame (written only when > 1, with format_version 2)
    frame_rates: list | None = None  # each level's own frame rate (Q > 1); None: all frame_rate
    pitch_bins: int | None = None  # the last level is the pitch stream in this many bins (written only when set)

    def __post_init__(self):
        if isinstance(self.num_codebooks, int) and self.num_codebooks > 1:
            self.format_version = max(self.format_version, LEVELS_FORMAT_VERSION)
            if self.frame_rates is None:
                self.frame_rates = [self.frame_rate] * self.num_codebooks


@dataclass
class Record:
    """One utterance's units: frame-level codes, or deduplicated units with durations."""

    id: str
    units: np.ndarray  # (n,) int64 with one codebook, (Q, n) with Q
    durations: np.ndarray | None = None  # (n,) frames per unit when deduplicated
    num_samples: int | None = None
    lossy: bool = False  # deduplicated without durations (gslm/jsonl/npz written deduplicated=true)
    speaker: str | None = None  # what extract knows of the utterance (parquet and lhotse keep them)
    path: str | None = None  # its audio file

    def frames(self) -> np.ndarray:
        """Frame-level codes."""
        if self.lossy:
            raise UnitFormatError(
                f"utterance {self.id}: deduplicated units without durations have lost "
                "their frame timing; extract again with deduplicate=false or format=textless"
            )
        return self.units if self.durations is None else expand(self.units, self.durations)

    def deduplicated(self) -> "Record":
        if self.durations is not None or self.lossy:
            return self
        units, durations = deduplicate(self.units)
        return replace(self, units=units, durations=durations)


# ---------------------------------------------------------------------------------------------
# Paths


def meta_path(output: str | os.PathLike, fmt: str) -> Path:
    """``<output>.meta.json``; for textless, ``<stem>.meta.json`` beside the .units file."""
    return writer_class(fmt).meta_path(output)


def textless_stem(output: str | os.PathLike) -> Path:
    p = Path(output)
    return p.with_suffix("") if p.suffix in TextlessWriter.EXTENSIONS else p


def read_meta(path: str | os.PathLike) -> UnitsMeta:
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
        meta = UnitsMeta(**data)
    except (OSError, ValueError, TypeError) as e:
        raise UnitFormatError(f"{p}: not a units meta.json ({e})") from None
    if not isinstance(meta.format_version, int) or meta.format_version > LEVELS_FORMAT_VERSION:
        raise UnitFormatError(
            f"{p}: format_version {meta.format_version!r}; this audio_vq reads versions 1 and "
            f"{LEVELS_FORMAT_VERSION} (a newer release wrote it)"
        )
    if not isinstance(meta.num_codebooks, int) or meta.num_codebooks < 1:
        raise UnitFormatError(f"{p}: num_codebooks {meta.num_codebooks!r}: expected an integer >= 1")
    if meta.num_codebooks > 1:
        try:
            level_spans(meta)
        except ValueError as e:
            raise UnitFormatError(f"{p}: {e}") from None
    if meta.pitch_bins is not None and not (
        isinstance(meta.pitch_bins, int) and meta.pitch_bins >= 1 and meta.num_codebooks > 1
    ):
        raise UnitFormatError(
            f"{p}: pitch_bins {meta.pitch_bins!r}: expected an integer >= 1 in a file of "
            "several codebooks (the pitch stream is its last level)"
        )
    return meta


def level_sizes(meta: UnitsMeta) -> list[int | None]:
    """Symbols per level: the codebook size, and pitch_bins + 1 for the pitch stream."""
    sizes = [meta.codebook_size] * meta.num_codebooks
    if meta.pitch_bins is not None:
        sizes[-1] = meta.pitch_bins + 1
    return sizes


def level_spans(meta: UnitsMeta) -> list[int]:
    """Per level, how many frames (at the file's ``frame_rate``) one of its codes spans: 1 for
    every residual level, r for a hierarchy's top. ValueError unless ``frame_rates`` holds one
    positive rate per level that divides ``frame_rate`` into a whole number of frames."""
    rates = meta.frame_rates if meta.num_codebooks > 1 else [meta.frame_rate]
    if not isinstance(rates, list) or len(rates) != meta.num_codebooks:
        raise ValueError(f"frame_rates {rates!r}: expected a list of {meta.num_codebooks} rates")
    if meta.frame_rate is None:
        return [1] * meta.num_codebooks
    spans = []
    for rate in rates:
        span = meta.frame_rate / rate if isinstance(rate, (int, float)) and rate > 0 else 0
        if not (span >= 1 and abs(span - round(span)) < 1e-6):
            raise ValueError(
                f"frame_rates {rates!r}: each must be frame_rate {meta.frame_rate:g} divided by a whole number"
            )
        spans.append(int(round(span)))
    return spans


def write_meta(output: str | os.PathLike, meta: UnitsMeta) -> Path:
    fields = asdict(meta)
    if meta.num_codebooks == 1:  # byte for byte what format_version 1 wrote
        del fields["num_codebooks"], fields["frame_rates"]
    if meta.pitch_bins is None:  # what files without a pitch stream always held
        del fields["pitch_bins"]
    return atomic_write_text(meta_path(output, meta.format), json.dumps(fields, indent=2) + "\n")


def _level_codebook(codebook: np.ndarray) -> np.ndarray:
    """A model's codebook as (Q, K, D): one codebook may come as (K, D)."""
    codebook = np.asarray(codebook)
    return codebook[None] if codebook.ndim == 2 else codebook


def _has_levels(units: np.ndarray, q: int) -> bool:
    """Whether ``units`` has the shape of q codebooks: (n,) for one, (q, n) for several."""
    return units.ndim == 1 if q == 1 else units.ndim == 2 and units.shape[0] == q


def write_dictionary(folder: str | os.PathLike, codebook_size: int) -> Path:
    """fairseq's ``dict.km.txt``: one ``<unit> 1`` line per code (counts are not used)."""
    return atomic_write_text(Path(folder) / DICT_NAME, "".join(f"{k} 1\n" for k in range(codebook_size)))


# ---------------------------------------------------------------------------------------------
# Writers


WRITERS: dict[str, type["UnitWriter"]] = {}  # format name -> its writer class, in definition order


class UnitWriter:
    """Streams records into one unit format; ``close()`` renames everything into place, then
    writes meta.json. A format is one subclass: its name and layout facts, where it writes
    (:meth:`files`), how it writes a record (:meth:`_write`) and how it reads records back
    (:meth:`read`); defining the subclass registers it in :data:`WRITERS`."""

    name: ClassVar[str]
    suffix: ClassVar[str] = ""  # of an example output name (error messages, sample's units file)
    deduplicated: ClassVar[bool | None] = None  # fixed by the layout; None: the writer's choice
    holds_durations: ClassVar[bool] = True  # deduplicated units keep their timing
    needs_codebook: ClassVar[bool] = False  # rows are codebook vectors (so no pitch stream)
    writes_folder: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        WRITERS[cls.name] = cls

    # -- where a format writes, and what it looks like on disk

    @classmethod
    def stem(cls, output: str | os.PathLike) -> Path:
        """The path the format's files are named after (the meta.json's and the parts folder's)."""
        return Path(output)

    @classmethod
    def meta_path(cls, output: str | os.PathLike) -> Path:
        return Path(str(cls.stem(output)) + META_SUFFIX)

    @classmethod
    def files(cls, output: str | os.PathLike) -> list[Path]:
        """The unit files (or folder) an output of this format consists of, meta.json aside."""
        return [Path(output)]

    @classmethod
    def looks_like(cls, path: Path) -> bool:
        """Whether a unit file without meta.json has this format's shape (detection): a file
        named with its suffix, by default."""
        return bool(cls.suffix) and not path.is_dir() and path.suffix == cls.suffix

    @classmethod
    def check_available(cls) -> None:
        """ConfigError naming the extra to install when the format's package is missing."""

    @classmethod
    def read(cls, path: Path, q: int, codebook: np.ndarray | None) -> Iterator[tuple[str, Record]]:
        """(where, record) in file order; q codebooks per utterance (the meta's, else 1)."""
        raise NotImplementedError

    # -- writing

    def __init__(self, output: str | os.PathLike, meta: UnitsMeta, codebook: np.ndarray | None = None):
        if self.needs_codebook and codebook is None:
            raise ValueError(f"format={self.name} writes codebook vectors: it needs the model's codebook")
        if self.needs_codebook and meta.pitch_bins is not None:
            raise ValueError(f"format={self.name} writes codebook vectors, and the pitch stream has none")
        if self.deduplicated is not None:
            meta.deduplicated = self.deduplicated
        if codebook is not None:
            codebook = _level_codebook(codebook)
            if codebook.shape[0] != meta.num_codebooks:
                raise ValueError(f"a codebook of {codebook.shape[0]} level(s) for {meta.num_codebooks} codebook(s)")
        self.output, self.meta, self.codebook = Path(output), meta, codebook
        self.output.parent.mkdir(parents=True, exist_ok=True)
        self._pending: list[tuple[Path, Path]] = []  # (temporary, final)
        self._files: list[io.TextIOBase] = []  # open temporaries, in the order of files()
        self._begin()

    def _begin(self) -> None:
        """Open a temporary beside each file of :meth:`files`, renamed over it at close()."""
        for final in self.files(self.output):
            tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
            self._files.append(self._open(tmp))
            self._pending.append((tmp, final))

    def _open(self, tmp: Path):
        """A temporary opened for writing (a text file; anything with ``close()``)."""
        return open(tmp, "w", encoding="utf-8", newline="\n")

    def write(self, record: Record) -> None:
        q = self.meta.num_codebooks
        if not _has_levels(record.units, q):
            raise ValueError(f"utterance {record.id}: units of shape {record.units.shape} in a file of {q} codebook(s)")
        rec = (
            record.deduplicated() if self.meta.deduplicated else replace(record, units=record.frames(), durations=None)
        )
        self._write(rec)
        self.meta.num_utterances += 1

    def _write(self, rec: Record) -> None:
        """Write one record, already in the file's form (deduplicated or frame-level)."""
        raise NotImplementedError

    def close(self) -> Path:
        for f in self._files:
            f.close()
        for tmp, final in self._pending:
            os.replace(tmp, final)
        self._finish()
        return write_meta(self.output, self.meta)

    def _finish(self) -> None:
        """Move what is not a renamed temporary file into place (folders, archives)."""

    def abort(self) -> None:
        for f in self._files:
            f.close()
        for tmp, _ in self._pending:
            tmp.unlink(missing_ok=True)
        self._discard()

    def _discard(self) -> None:
        """Remove what :meth:`abort`'s unlinking of temporaries does not."""

    def _lines(self, rec: Record) -> list[tuple[str, str]]:
        """(id, space-separated units) per level: one line, or Q lines with ids ``<id>_q<l>``."""
        q = self.meta.num_codebooks
        levels = [rec.units] if q == 1 else list(rec.units)
        return [
            (rec.id if q == 1 else f"{rec.id}{LEVEL_SUFFIX}{level}", " ".join(map(str, row.tolist())))
            for level, row in enumerate(levels)
        ]


class GslmWriter(UnitWriter):
    """``id|u1 u2 ...``: a line per utterance (per level)."""

    name = "gslm"
    suffix = ".txt"
    holds_durations = False

    @classmethod
    def looks_like(cls, path):
        return False  # any text file is read as gslm lines, and only when no other format claims it

    @classmethod
    def read(cls, path, q, codebook):
        return _levels_of_lines(_read_lines(path), q)

    def _write(self, rec):
        for uid, text in self._lines(rec):
            self._files[0].write(f"{uid}|{text}\n")


class TextlessWriter(UnitWriter):
    """``<stem>.units`` / ``.durations`` / ``.ids``, line-aligned; always deduplicated."""

    name = "textless"
    deduplicated = True
    EXTENSIONS = (".units", ".durations", ".ids")

    @classmethod
    def stem(cls, output):
        return textless_stem(output)

    @classmethod
    def files(cls, output):
        return [Path(f"{cls.stem(output)}{ext}") for ext in cls.EXTENSIONS]

    @classmethod
    def looks_like(cls, path):
        return not path.is_dir() and (
            path.suffix in cls.EXTENSIONS or (not path.exists() and Path(f"{path}.units").is_file())
        )

    @classmethod
    def read(cls, path, q, codebook):
        return _levels_of_lines(_read_textless(textless_stem(path)), q)

    def _write(self, rec):
        durations = " ".join(map(str, rec.durations.tolist()))
        units, durations_file, ids = self._files
        for uid, text in self._lines(rec):
            units.write(text + "\n")
            durations_file.write(durations + "\n")
            ids.write(uid + "\n")


class JsonlWriter(UnitWriter):
    """One JSON object per utterance: {id, units, durations?, frame_rate, num_samples}."""

    name = "jsonl"
    suffix = ".jsonl"

    @classmethod
    def read(cls, path, q, codebook):
        return _read_jsonl(path, q)

    def _write(self, rec):
        obj = {"id": rec.id, "units": rec.units.tolist()}
        if rec.durations is not None:
            obj["durations"] = rec.durations.tolist()
        obj.update(frame_rate=self.meta.frame_rate, num_samples=rec.num_samples)
        self._files[0].write(json.dumps(obj) + "\n")


class NpzWriter(UnitWriter):
    """One archive of concatenated units with offsets. Units (and durations) stream to raw int32
    files; the small per-utterance arrays stay in memory; ``close()`` streams them all into the
    archive."""

    name = "npz"
    suffix = ".npz"

    @classmethod
    def read(cls, path, q, codebook):
        return _read_npz(path, q)

    def _begin(self):
        self._npz = {"ids": [], "lengths": [], "num_samples": []}
        self._raw = {}
        for name in self._raw_names():
            tmp = self.output.with_name(f".{self.output.name}.{name}.tmp-{os.getpid()}")
            self._raw[name] = (tmp, open(tmp, "wb"))

    def _raw_names(self) -> list[str]:
        """The raw files, one per level of units (each level's row of the (Q, total) array)."""
        q = self.meta.num_codebooks
        return (["units"] if q == 1 else [f"units{level}" for level in range(q)]) + ["durations"]

    def _write(self, rec):
        levels = [rec.units] if self.meta.num_codebooks == 1 else list(rec.units)
        self._npz["ids"].append(rec.id)
        self._npz["lengths"].append(rec.units.shape[-1])
        self._npz["num_samples"].append(-1 if rec.num_samples is None else rec.num_samples)
        for name, row in zip(self._raw_names(), levels):
            self._raw[name][1].write(row.astype(NPZ_DTYPE).tobytes())
        if rec.durations is not None:
            self._raw["durations"][1].write(rec.durations.astype(NPZ_DTYPE).tobytes())

    def _finish(self):
        """The archive np.savez would write (stored, one .npy per array), with the big arrays
        copied from their raw files in blocks instead of being held in memory."""
        d = self._npz
        small = {
            "ids": np.array(d["ids"], dtype=str),
            "offsets": np.r_[0, np.cumsum(d["lengths"], dtype=np.int64)].astype(np.int64),
            "num_samples": np.array(d["num_samples"], dtype=np.int64),
        }
        q = self.meta.num_codebooks
        # each archive member and the raw files it is the concatenation of (units: level by
        # level, which is the C order of (Q, total))
        raw = {"units": self._raw_names()[:-1]}
        if self.meta.deduplicated:
            raw["durations"] = ["durations"]
        for _, f in self._raw.values():
            f.close()
        total = int(small["offsets"][-1])
        with atomic_path(self.output) as tmp:
            with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as z:
                for name, array in small.items():
                    with z.open(f"{name}.npy", "w", force_zip64=True) as f:
                        np.lib.format.write_array(f, array, allow_pickle=False)
                for name, parts in raw.items():
                    shape = (q, total) if name == "units" and q > 1 else (total,)
                    with z.open(f"{name}.npy", "w", force_zip64=True) as f:
                        header = {"descr": np.dtype(NPZ_DTYPE).str, "fortran_order": False, "shape": shape}
                        np.lib.format.write_array_header_2_0(f, header)
                        for part in parts:
                            with open(self._raw[part][0], "rb") as src:
                                shutil.copyfileobj(src, f, COPY_BLOCK_BYTES)
        for path, _ in self._raw.values():
            path.unlink(missing_ok=True)

    def _discard(self):
        for tmp, f in self._raw.values():
            f.close()
            tmp.unlink(missing_ok=True)


class ZerospeechWriter(UnitWriter):
    """A folder of ``<id>.txt``, a row of codebook vectors per frame; always frame-level."""

    name = "zerospeech"
    deduplicated = False
    holds_durations = False
    needs_codebook = True
    writes_folder = True

    @classmethod
    def looks_like(cls, path):
        return path.is_dir()

    @classmethod
    def read(cls, path, q, codebook):
        if codebook is None:
            raise UnitFormatError(f"{path}: reading zerospeech features back into units needs the model's codebook")
        codebook = _level_codebook(codebook)
        if codebook.shape[0] < q:
            raise UnitFormatError(f"{path}: {q} codebook(s) in the file, the model has {codebook.shape[0]}")
        return _read_zerospeech(path, codebook[:q])  # a file of a model's first q levels

    def _begin(self):
        self._dir = self.output.with_name(f".{self.output.name}.tmp-{os.getpid()}")
        shutil.rmtree(self._dir, ignore_errors=True)
        self._dir.mkdir(parents=True)

    def _write(self, rec):
        q = self.meta.num_codebooks
        frames = rec.frames().reshape(q, -1)  # (Q, n): each level's vectors side by side
        vectors = np.concatenate([self.codebook[level][frames[level]] for level in range(q)], axis=1)
        buf = io.StringIO()
        np.savetxt(buf, vectors, fmt=f"%.{ZEROSPEECH_DECIMALS}e")
        inside(self._dir, f"{rec.id}.txt").write_text(buf.getvalue(), encoding="utf-8")

    def _finish(self):
        if self.output.exists():
            shutil.rmtree(self.output)
        os.replace(self._dir, self.output)

    def _discard(self):
        shutil.rmtree(self._dir, ignore_errors=True)


class ParquetWriter(UnitWriter):
    """A Parquet table, a row per utterance: id, speaker, units (a list of int16, or int32 when a
    level has more than 32,768 symbols; Q lists with Q codebooks), durations when deduplicated,
    num_samples and frame_rate: what ``datasets.load_dataset("parquet", ...)``, pandas and unit
    LMs read as they are. Rows stream out in row groups (the ``hf`` extra: pyarrow)."""

    name = "parquet"
    suffix = ".parquet"
    ROW_GROUP = 1024  # rows buffered before they are written as a row group

    @classmethod
    def check_available(cls):
        _pyarrow()

    @classmethod
    def read(cls, path, q, codebook):
        _, pq = _pyarrow()
        try:
            table = pq.ParquetFile(path)
            batches = table.iter_batches(batch_size=cls.ROW_GROUP)
            row = 0
            for batch in batches:
                for obj in batch.to_pylist():
                    where = f"{path}: row {row}"
                    if not isinstance(obj.get("id"), str):
                        raise UnitFormatError(f"{where}: not a units row (no id)")
                    known = {k: obj.get(k) for k in ("speaker", "path")}
                    yield (
                        where,
                        _record(
                            where, obj["id"], obj.get("units"), obj.get("durations"), q, obj.get("num_samples"), **known
                        ),
                    )
                    row += 1
        except OSError as e:
            raise UnitFormatError(f"{path}: not a units .parquet ({' '.join(str(e).split())})") from None

    def _begin(self):
        pa, pq = _pyarrow()
        sizes = level_sizes(self.meta)
        small = all(k is not None and k <= 1 << 15 for k in sizes)  # every code fits in int16
        code = pa.int16() if small else pa.int32()
        units = pa.list_(code) if self.meta.num_codebooks == 1 else pa.list_(pa.list_(code))
        columns = [("id", pa.string()), ("speaker", pa.string()), ("path", pa.string()), ("units", units)]
        if self.meta.deduplicated:
            columns.append(("durations", pa.list_(pa.int32())))
        columns += [("num_samples", pa.int64()), ("frame_rate", pa.float64())]
        self._schema, self._pq = pa.schema(columns), pq
        super()._begin()

    def _open(self, tmp):
        return _RowGroups(self._pq.ParquetWriter(tmp, self._schema), self._schema, self.ROW_GROUP)

    def _write(self, rec):
        row = {"id": rec.id, "speaker": rec.speaker, "path": rec.path, "units": rec.units.tolist()}
        if self.meta.deduplicated:
            row["durations"] = rec.durations.tolist()
        row.update(num_samples=rec.num_samples, frame_rate=self.meta.frame_rate)
        self._files[0].write(row)


class _RowGroups:
    """Rows buffered into row groups of a pyarrow ParquetWriter; ``close`` writes the last."""

    def __init__(self, writer, schema, size: int):
        self.writer, self.schema, self.size, self.rows = writer, schema, size, []

    def write(self, row: dict) -> None:
        self.rows.append(row)
        if len(self.rows) >= self.size:
            self.flush()

    def flush(self) -> None:
        if self.rows:
            import pyarrow as pa

            self.writer.write_table(pa.Table.from_pylist(self.rows, schema=self.schema))
            self.rows = []

    def close(self) -> None:
        self.flush()
        self.writer.close()


class LhotseWriter(UnitWriter):
    """A lhotse CutSet (``.jsonl.gz``), a MonoCut per utterance: its recording (the audio file,
    when known), a supervision with its speaker, and the units in the cut's custom fields
    (``units``: a list, Q lists with Q codebooks; ``durations`` when deduplicated;
    ``frame_rate``), read by ``lhotse.CutSet.from_file`` as ``cut.units`` (the ``lhotse`` extra)."""

    name = "lhotse"
    suffix = ".jsonl.gz"

    @classmethod
    def looks_like(cls, path):
        return not path.is_dir() and path.name.endswith(cls.suffix)

    @classmethod
    def check_available(cls):
        _lhotse()

    @classmethod
    def read(cls, path, q, codebook):
        try:
            with gzip.open(path, "rt", encoding="utf-8") as f:
                for where, cut in _json_lines(f, path, "a lhotse cut"):
                    try:
                        custom, uid = cut.get("custom") or {}, str(cut["id"])
                    except (KeyError, AttributeError) as e:
                        raise UnitFormatError(f"{where}: not a lhotse cut ({e})") from None
                    speakers = [s.get("speaker") for s in cut.get("supervisions") or []]
                    sources = ((cut.get("recording") or {}).get("sources") or [{}])[0]
                    known = {"speaker": speakers[0] if speakers else None, "path": sources.get("source")}
                    num_samples = custom.get("num_samples")
                    yield (
                        where,
                        _record(where, uid, custom.get("units"), custom.get("durations"), q, num_samples, **known),
                    )
        except (OSError, EOFError) as e:
            raise UnitFormatError(f"{path}: not a gzipped lhotse CutSet ({' '.join(str(e).split())})") from None

    def _begin(self):
        self._lhotse = _lhotse()
        super()._begin()

    def _open(self, tmp):
        return gzip.open(tmp, "wt", encoding="utf-8", newline="\n")

    def _write(self, rec):
        lhotse = self._lhotse
        recording = None
        if rec.path is not None:
            from ..audio import info as audio_info  # soundfile: loaded when a recording is described

            found = audio_info(rec.path)
            source = lhotse.AudioSource(type="file", channels=list(range(found.channels)), source=str(rec.path))
            recording = lhotse.Recording(
                rec.id, [source], found.sample_rate, found.num_samples, found.duration, list(range(found.channels))
            )
        duration = recording.duration if recording else (rec.num_samples or 0) / (self.meta.sample_rate or 1)
        supervisions = [lhotse.SupervisionSegment(rec.id, rec.id, 0.0, duration, speaker=rec.speaker)]
        custom = {"units": rec.units.tolist()}
        if rec.durations is not None:
            custom["durations"] = rec.durations.tolist()
        custom.update(frame_rate=self.meta.frame_rate, num_samples=rec.num_samples)
        cut = lhotse.MonoCut(rec.id, 0.0, duration, 0, supervisions=supervisions, recording=recording, custom=custom)
        self._files[0].write(json.dumps(cut.to_dict()) + "\n")


def _pyarrow():
    return optional_import("pyarrow", "hf", "format=parquet"), optional_import(
        "pyarrow.parquet", "hf", "format=parquet"
    )


def _lhotse():
    return optional_import("lhotse", "lhotse", "format=lhotse")


FORMATS = tuple(WRITERS)


def writer_class(fmt: str) -> type[UnitWriter]:
    """The writer class (and format description) of format ``fmt``; ValueError naming the formats."""
    if fmt not in WRITERS:
        raise ValueError(f"format={fmt}: unknown (formats: {', '.join(FORMATS)})")
    return WRITERS[fmt]


def open_writer(output: str | os.PathLike, meta: UnitsMeta, codebook: np.ndarray | None = None) -> UnitWriter:
    """A writer of ``meta.format`` streaming into ``output`` (see :class:`UnitWriter`)."""
    return writer_class(meta.format)(output, meta, codebook)


def write_units(
    output: str | os.PathLike, records: Iterable[Record], meta: UnitsMeta, codebook: np.ndarray | None = None
) -> Path:
    """Write all records; nothing is left under the final names if writing fails midway."""
    writer = open_writer(output, meta, codebook)
    try:
        for r in records:
            writer.write(r)
    except BaseException:
        writer.abort()
        raise
    return writer.close()


# ---------------------------------------------------------------------------------------------
# Readers


def detect_format(path: str | os.PathLike) -> str:
    """The format of a unit file or folder: its meta.json says, else its shape does."""
    p = Path(path)
    for cls in WRITERS.values():
        m = cls.meta_path(p)
        if m.is_file():
            return read_meta(m).format
    for cls in WRITERS.values():
        if cls.looks_like(p):
            return cls.name
    if not p.exists():
        raise UnitFormatError(f"{p}: no such unit file or folder")
    return GslmWriter.name  # any other text file: lines of units, with or without ids


def read_units(
    path: str | os.PathLike, fmt: str | None = None, codebook: np.ndarray | None = None
) -> tuple[UnitsMeta | None, Iterator[Record]]:
    """(meta or None, records in file order) of a unit file in any format (detected if None).
    Reading zerospeech maps each row back to its code, so it needs the model's codebook ((K, D),
    or (Q, K, D): a file of q <= Q codebooks uses the first q). Units are (n,) with one codebook
    and (Q, n) when the meta says num_codebooks Q > 1."""
    p = Path(path)
    fmt = fmt or detect_format(p)
    if fmt not in WRITERS:
        raise UnitFormatError(f"{p}: unknown format {fmt} (formats: {', '.join(FORMATS)})")
    cls = WRITERS[fmt]
    m = cls.meta_path(p)
    meta = read_meta(m) if m.is_file() else None
    q = meta.num_codebooks if meta is not None else 1
    records = _checked_ids(cls.read(p, q, codebook))
    if meta is not None and meta.deduplicated:
        records = (replace(r, lossy=r.durations is None) for r in records)
    return meta, records


def _checked_ids(located: Iterable[tuple[str, Record]]) -> Iterator[Record]:
    """The records, each id checked where it was read: it must be usable as a file name and
    as a field of every format (no separators, no control characters), and unique."""
    seen: dict[str, str] = {}
    for where, record in located:
        problem = name_problem(record.id)
        if problem:
            raise UnitFormatError(f"{where}: id {record.id!r} {problem}")
        if record.id in seen:
            raise UnitFormatError(f"{where}: duplicate id {record.id!r} (first at {seen[record.id]})")
        seen[record.id] = where
        yield record


def _levels_of_lines(located: Iterable[tuple[str, Record]], q: int) -> Iterator[tuple[str, Record]]:
    """gslm / textless lines as records: with q > 1 codebooks every q consecutive lines are one
    utterance's levels, ids ``<id>_q0`` .. ``<id>_q<q-1>``, of one length (and one durations line)."""
    if q == 1:
        yield from located
        return
    group: list[tuple[str, Record]] = []
    for where, record in located:
        group.append((where, record))
        if len(group) < q:
            continue
        first_where, first = group[0]
        uid = first.id[: -len(f"{LEVEL_SUFFIX}0")] if first.id.endswith(f"{LEVEL_SUFFIX}0") else None
        for level, (w, r) in enumerate(group):
            if uid is None or r.id != f"{uid}{LEVEL_SUFFIX}{level}":
                raise UnitFormatError(
                    f"{w}: id {r.id!r} where level {level} of {q} codebooks was expected "
                    f"(ids <id>{LEVEL_SUFFIX}0 .. <id>{LEVEL_SUFFIX}{q - 1}, in order)"
                )
            if r.units.shape != first.units.shape:
                raise UnitFormatError(f"{w}: {r.units.size} units at level {level}, {first.units.size} at level 0")
            if (r.durations is None) != (first.durations is None) or (
                r.durations is not None and not np.array_equal(r.durations, first.durations)
            ):
                raise UnitFormatError(f"{w}: level {level}'s durations differ from level 0's")
        yield first_where, Record(uid, np.stack([r.units for _, r in group]), first.durations, first.num_samples)
        group = []
    if group:
        where, record = group[-1]
        raise UnitFormatError(f"{where}: the file ends inside an utterance: {len(group)} of {q} levels")


def _ints(text: str, where: str) -> np.ndarray:
    return _int64(text.split(), where, "expected space-separated integer units")


def _int64(values, where: str, expected: str) -> np.ndarray:
    """``values`` as int64; UnitFormatError (not an OverflowError) for a unit beyond int64."""
    try:
        return np.array([int(u) for u in values], dtype=np.int64)
    except (ValueError, TypeError):
        raise UnitFormatError(f"{where}: {expected}") from None
    except OverflowError:
        raise UnitFormatError(f"{where}: a unit beyond the 64-bit integer range") from None


def _read_lines(p: Path) -> Iterator[Record]:
    """``id|u1 u2 ...`` or bare ``u1 u2 ...`` lines (ids: line numbers from 0, counting units lines)."""
    if not p.is_file():
        raise UnitFormatError(f"{p}: no such file")
    with open(p, encoding="utf-8") as f:
        n = 0
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            uid, sep, units = line.rstrip("\n").partition("|")
            if not sep:
                uid, units = str(n), line
            codes = _ints(units, f"{p}:{lineno}")
            if codes.size == 0:
                raise UnitFormatError(f"{p}:{lineno}: no units")
            n += 1
            yield f"{p}:{lineno}", Record(uid.strip(), codes)


def _read_textless(stem: Path) -> Iterator[Record]:
    units_path, dur_path, ids_path = (Path(f"{stem}.{e}") for e in ("units", "durations", "ids"))
    if not units_path.is_file():
        raise UnitFormatError(f"{units_path}: no such file")
    units = [line for line in units_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    durs = (
        [line for line in dur_path.read_text(encoding="utf-8").splitlines() if line.strip()]
        if dur_path.is_file()
        else None
    )
    ids = (
        ids_path.read_text(encoding="utf-8").splitlines() if ids_path.is_file() else [str(i) for i in range(len(units))]
    )
    if durs is not None and len(durs) != len(units):
        raise UnitFormatError(f"{dur_path}: {len(durs)} lines but {units_path} has {len(units)}")
    if len(ids) != len(units):
        raise UnitFormatError(f"{ids_path}: {len(ids)} lines but {units_path} has {len(units)}")
    for i, (uid, line) in enumerate(zip(ids, units)):
        u = _ints(line, f"{units_path}:{i + 1}")
        d = _ints(durs[i], f"{dur_path}:{i + 1}") if durs is not None else None
        if d is not None and d.shape != u.shape:
            raise UnitFormatError(f"{dur_path}:{i + 1}: {d.size} durations for {u.size} units")
        yield f"{ids_path if ids_path.is_file() else units_path}:{i + 1}", Record(uid, u, d)


def _json_lines(lines: Iterable[str], path: Path, what: str) -> Iterator[tuple[str, dict]]:
    """(where, object) of each non-blank JSON line; UnitFormatError naming the line otherwise."""
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            obj = json.loads(line)
        except ValueError as e:
            raise UnitFormatError(f"{where}: not {what} ({e})") from None
        if not isinstance(obj, dict):
            raise UnitFormatError(f"{where}: not {what} (a JSON object per line)")
        yield where, obj


def _read_jsonl(p: Path, q: int) -> Iterator[Record]:
    with open(p, encoding="utf-8") as f:
        for where, obj in _json_lines(f, p, "a units record"):
            try:
                d = obj.get("durations")
                uid, units = str(obj["id"]), obj["units"]
            except KeyError as e:
                raise UnitFormatError(f"{where}: not a units record ({e})") from None
            yield where, _record(where, uid, units, d, q, obj.get("num_samples"))


def _record(where: str, uid: str, units, durations, q: int, num_samples=None, **known) -> Record:
    """A record of units given as a list of integers (q lists with q codebooks) and durations
    as one list or None; UnitFormatError naming ``where`` otherwise."""
    if not isinstance(units, list) or (durations is not None and not isinstance(durations, list)):
        raise UnitFormatError(f"{where}: units and durations must be lists of integers")
    expected = "units and durations must be lists of integers"
    if q == 1:
        codes = _int64(units, where, expected)
    else:
        expected = f"units must be {q} lists of integers (one per codebook) of one length"
        if len(units) != q or not all(isinstance(row, list) and len(row) == len(units[0]) for row in units):
            raise UnitFormatError(f"{where}: {expected}")
        codes = np.stack([_int64(row, where, expected) for row in units])
    d = None if durations is None else _int64(durations, where, expected)
    return Record(uid, codes, d, num_samples, **known)


def _read_npz(p: Path, q: int) -> Iterator[Record]:
    try:
        z = np.load(p, allow_pickle=False)  # never unpickle: ids are a fixed-width str array
        ids, units, offsets, num_samples = z["ids"], z["units"], z["offsets"], z["num_samples"]
        durations = z["durations"] if "durations" in z.files else None
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
        raise UnitFormatError(f"{p}: not a units .npz ({e})") from None
    if not _has_levels(units, q):
        raise UnitFormatError(
            f"{p}: units of shape {units.shape}, expected {'(total,)' if q == 1 else f'({q}, total)'}"
        )
    for i, uid in enumerate(ids):
        a, b = int(offsets[i]), int(offsets[i + 1])
        yield (
            f"{p}: ids[{i}]",
            Record(
                str(uid),
                units[..., a:b].astype(np.int64),
                None if durations is None else durations[a:b].astype(np.int64),
                None if num_samples[i] < 0 else int(num_samples[i]),
            ),
        )


def _read_zerospeech(folder: Path, codebook: np.ndarray) -> Iterator[Record]:
    """Each row's code per level: the nearest of that level's vectors (codebook (Q, K, D); a row
    holds the Q level vectors side by side)."""
    q, _, dim = codebook.shape
    for f in sorted(folder.glob("*.txt")):
        rows = np.loadtxt(f, ndmin=2, dtype=np.float64)
        if rows.shape[1] != q * dim:
            raise UnitFormatError(
                f"{f}: rows of {rows.shape[1]} values, the codebook's vectors have "
                f"{dim}{f' x {q} levels' if q > 1 else ''}"
            )
        codes = np.stack(
            [
                ((rows[:, None, level * dim : (level + 1) * dim] - codebook[level][None].astype(np.float64)) ** 2)
                .sum(-1)
                .argmin(1)
                for level in range(q)
            ]
        ).astype(np.int64)
        yield str(f), Record(f.stem, codes[0] if q == 1 else codes)
