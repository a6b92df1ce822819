"""Unit files as a corpus for a prior: sequences, K, speakers, train/valid/test splits, random crops.

Any unit format the toolkit writes (formats.read_units detects it), and other toolkits'
GSLM ``id|units`` lines. K comes from the meta.json, else a ``dict.km.txt`` beside the file,
else the largest unit + 1 (:attr:`UnitCorpus.k_source` says which). Frame-level units are
the paper's; ``deduplicate=True`` collapses runs into (units, durations) for a prior with a
duration head (GSLM-style). A prior models one codebook: of a file of several levels, ``level``
picks one, at its own frame rate (a hierarchy's top level: one unit per top code, not one per
frame it is held over).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..config import ConfigError
from ..manifest import ManifestError, read_manifest
from .extraction import deduplicate as deduplicate_runs
from .formats import DICT_NAME, UnitFormatError, level_sizes, level_spans, read_units


@dataclass
class UnitCorpus:
    """Utterances of units (and run lengths when deduplicated), with what the file said."""

    ids: list[str]
    units: list[np.ndarray]  # (n,) int64 each
    durations: list[np.ndarray] | None  # (n,) frames per unit, when deduplicated
    codebook_size: int
    k_source: str  # meta.json | dict.km.txt | max unit + 1 | codebook_size=
    frame_rate: float | None
    model_checksum: str | None
    path: str
    level: int | None = None  # the level of a file of several codebooks (None: a one-codebook file)
    # a conditional prior's condition: another level's codes, one per unit (at the units' rate)
    conditions: list[np.ndarray] | None = None
    condition_level: int | None = None
    condition_size: int | None = None  # symbols of the condition's level

    def subset(self, keep: list[int]) -> "UnitCorpus":
        pick = lambda xs: None if xs is None else [xs[i] for i in keep]  # noqa: E731
        return UnitCorpus(
            pick(self.ids),
            pick(self.units),
            pick(self.durations),
            self.codebook_size,
            self.k_source,
            self.frame_rate,
            self.model_checksum,
            self.path,
            self.level,
            pick(self.conditions),
            self.condition_level,
            self.condition_size,
        )


def load_units(
    path: str,
    deduplicate: bool,
    codebook_size: int | None = None,
    key: str = "units",
    level: int | None = None,
    condition_level: int | None = None,
) -> UnitCorpus:
    """Every utterance of the unit file at ``path`` (of a file of several codebooks, ``level``
    at its own rate, and with ``condition_level`` that level's codes, one per unit of ``level``:
    a hierarchy's top code held over each bottom frame); ConfigError naming ``key`` and the
    problem."""
    p = Path(path).expanduser()
    try:
        meta, records = read_units(p)
        q = meta.num_codebooks if meta is not None else 1
        if level is not None and not (isinstance(level, int) and not isinstance(level, bool) and 0 <= level < q):
            raise ConfigError(f"level={level}: {key}={path} has {q} codebook(s): give 0 .. {q - 1}")
        if q > 1 and level is None:
            raise ConfigError(
                f"{key}={path}: {q} codebooks per frame; a prior models one: give level=<0 .. {q - 1}> "
                "(0: a residual model's first level, a hierarchy's top)"
            )
        spans = level_spans(meta) if q > 1 else [1]
        span = spans[level or 0]
        if condition_level is not None:
            if q == 1 or not 0 <= condition_level < q or condition_level == level:
                raise ConfigError(
                    f"condition_level={condition_level}: {key}={path} has {q} codebook(s); give another "
                    f"level than level={level}, in 0 .. {q - 1}"
                )
            if deduplicate:
                raise ConfigError("condition_level: a conditional prior models frame-level units (deduplicate=false)")
            if spans[condition_level] % span:
                raise ConfigError(
                    f"condition_level={condition_level}: its codes do not span whole units of level={level}"
                )
        ids, units, durations, conditions = [], [], [], []
        for r in records:
            frames = r.frames() if q == 1 else _level_codes(r.frames()[level], span, r.id, level, f"{key}={path}")
            if condition_level is not None:
                conditions.append(r.frames()[condition_level][::span])
            if deduplicate:
                if q == 1:
                    d = r.deduplicated()
                    if d.durations is None:
                        raise ConfigError(
                            f"{key}={path}: deduplicated units without durations (utterance {r.id}): "
                            "a prior with a duration head needs them (textless, jsonl or npz keep them)"
                        )
                    run_units, run_durations = d.units, d.durations
                else:
                    run_units, run_durations = deduplicate_runs(frames)
                units.append(run_units)
                durations.append(run_durations)
            else:
                units.append(frames)
            ids.append(r.id)
    except UnitFormatError as e:
        raise ConfigError(f"{key}={path}: {e}") from None
    if not ids:
        raise ConfigError(f"{key}={path}: no utterances in this unit file")
    if any(len(u) == 0 for u in units):
        raise ConfigError(f"{key}={path}: utterance {ids[[len(u) for u in units].index(0)]} has no units")
    top = max(int(u.max()) for u in units)
    if min(int(u.min()) for u in units) < 0:
        raise ConfigError(f"{key}={path}: negative units")
    if codebook_size is not None:
        k, source = codebook_size, "codebook_size="
    elif meta is not None and meta.pitch_bins is not None and level == q - 1:
        k, source = level_sizes(meta)[level], "meta.json's pitch_bins + 1"
    elif meta is not None and meta.codebook_size:
        k, source = int(meta.codebook_size), "meta.json"
    elif (p.parent / DICT_NAME).is_file():
        k, source = _dictionary_size(p.parent / DICT_NAME), DICT_NAME
    else:
        k, source = top + 1, "max unit + 1"
    if top >= k:
        raise ConfigError(f"{key}={path}: unit {top} is outside 0..{k - 1} (K = {k} from {source})")
    frame_rate = None if meta is None else meta.frame_rates[level] if q > 1 else meta.frame_rate
    condition_size = None
    if condition_level is not None:  # the content's K, or the pitch stream's bins + 1
        pitch_level = q - 1 if meta.pitch_bins is not None else None
        content_k = k if level != pitch_level else int(meta.codebook_size)
        condition_size = level_sizes(meta)[condition_level] if condition_level == pitch_level else content_k
        top_condition = max(int(c.max(initial=0)) for c in conditions)
        if top_condition >= condition_size:
            raise ConfigError(
                f"{key}={path}: level {condition_level} holds code {top_condition}, outside 0..{condition_size - 1}"
            )
    return UnitCorpus(
        ids,
        units,
        durations if deduplicate else None,
        k,
        source,
        frame_rate,
        meta.model_checksum if meta else None,
        str(p),
        level if q > 1 else None,
        conditions if condition_level is not None else None,
        condition_level,
        condition_size,
    )


def _level_codes(row: np.ndarray, span: int, uid: str, level: int, where: str) -> np.ndarray:
    """One level's codes at its own rate: the first of each group of ``span`` frames it is held
    over; ConfigError when the file does not hold it so."""
    codes = row[::span]
    if not np.array_equal(np.repeat(codes, span)[: len(row)], row):
        raise ConfigError(
            f"{where}: utterance {uid}: level {level} does not hold one code over each group of "
            f"{span} frames, as its frame_rates say"
        )
    return codes


def _dictionary_size(path: Path) -> int:
    """K of fairseq's dict.km.txt (``<unit> <count>`` lines): the largest unit + 1."""
    units = [int(line.split()[0]) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return max(units) + 1


def speakers_of(corpus: UnitCorpus, manifest: str | None) -> list[str | None]:
    """Each utterance's speaker from a manifest (ids must match), or None everywhere without one."""
    if manifest is None:
        return [None] * len(corpus.ids)
    try:
        by_id = {u.id: u.speaker for u in read_manifest(Path(manifest).expanduser())}
    except ManifestError as e:
        raise ConfigError(f"manifest: {e}") from None
    missing = [i for i in corpus.ids if i not in by_id]
    if missing:
        raise ConfigError(
            f"manifest={manifest}: no utterance {missing[0]!r} of units={corpus.path} "
            f"({len(missing)} of {len(corpus.ids)} ids are missing)"
        )
    return [by_id[i] for i in corpus.ids]


def held_out(ids: list[str], fraction: float, seed: int, salt: str = "") -> list[bool]:
    """A seeded split by id (crc32 of salt, seed and id): the same ids are held out whatever their order."""
    marks = [zlib.crc32(f"{salt}{seed}:{i}".encode("utf-8")) % 10_000 < fraction * 10_000 for i in ids]
    if all(marks) or (fraction > 0 and not any(marks) and len(ids) > 1):
        marks = [i == 0 for i in range(len(ids))]  # at least one on each side
    return marks


def split_roles(
    ids: list[str],
    seed: int,
    test_fraction: float,
    valid_fraction: float,
    test_ids: set[str] | None = None,
    valid_ids: set[str] | None = None,
) -> list[str]:
    """Each id's split for a prior: ``valid`` (validation curves and train.keep_best: the ids
    of a valid unit file, else a seeded ``valid_fraction`` of what the test split leaves, drawn
    with its own salt), ``test`` (what evaluate-prior scores: the ids of a test unit file, else
    a seeded ``test_fraction`` of the ids not in the valid file), else ``train``. Model
    selection never sees the test split; a test and a valid file that share ids are refused."""
    if test_ids is not None and valid_ids is not None and test_ids & valid_ids:
        shared = sorted(test_ids & valid_ids)
        raise ConfigError(
            f"test and valid: the two unit files share {len(shared)} id(s) (e.g. {shared[0]!r}); "
            "model selection must not see the test utterances"
        )
    given = valid_ids if valid_ids is not None else set()
    free = [i for i in ids if i not in given]
    test = test_ids if test_ids is not None else {i for i, m in zip(free, held_out(free, test_fraction, seed)) if m}
    rest = [i for i in free if i not in test]
    valid = (
        given
        if valid_ids is not None
        else {i for i, m in zip(rest, held_out(rest, valid_fraction, seed, salt="valid:")) if m}
    )
    return ["valid" if i in valid else "test" if i in test else "train" for i in ids]


def split_corpus(
    corpus: UnitCorpus,
    deduplicate: bool,
    seed: int,
    test_fraction: float,
    valid_fraction: float,
    test: str | None = None,
    valid: str | None = None,
) -> dict[str, UnitCorpus]:
    """A prior's ``train``, ``valid`` and ``test`` corpora from its unit file (split_roles):
    ``test`` / ``valid`` name unit files whose utterances are that split (and whose ids are
    kept out of training), None a seeded fraction of ``corpus``. train-prior and
    evaluate-prior both split through here, so they agree on every id."""
    files = {
        key: None
        if path is None
        else load_units(
            path, deduplicate, corpus.codebook_size, key=key, level=corpus.level, condition_level=corpus.condition_level
        )
        for key, path in (("test", test), ("valid", valid))
    }
    roles = split_roles(
        corpus.ids,
        seed,
        test_fraction,
        valid_fraction,
        *(None if f is None else set(f.ids) for f in (files["test"], files["valid"])),
    )
    parts = {r: corpus.subset([i for i, x in enumerate(roles) if x == r]) for r in ("train", "valid", "test")}
    parts.update({key: f for key, f in files.items() if f is not None})
    return parts


class UnitCrops(torch.utils.data.Dataset):
    """Random crops of ``length`` units (whole utterances when shorter), indexed by
    ``(epoch, utterance)``: the crop start comes from (seed, epoch, utterance), so batch b of a
    run is a function of b alone (EpochBatches), and a resumed run sees the same crops."""

    def __init__(self, corpus: UnitCorpus, speakers: list[int] | None, length: int, seed: int, fixed: bool = False):
        self.corpus, self.speakers, self.length, self.seed, self.fixed = corpus, speakers, length, seed, fixed

    def __len__(self) -> int:
        return len(self.corpus.ids)

    def __getitem__(self, item) -> dict:
        epoch, i = item if isinstance(item, tuple) else (0, item)
        units = self.corpus.units[i]
        span = max(0, len(units) - self.length)
        start = 0 if self.fixed or span == 0 else int(np.random.default_rng([self.seed, epoch, i]).integers(span + 1))
        out = {"units": torch.from_numpy(units[start : start + self.length].astype(np.int64))}
        if self.corpus.durations is not None:
            out["durations"] = torch.from_numpy(self.corpus.durations[i][start : start + self.length].astype(np.int64))
        if self.corpus.conditions is not None:
            out["condition"] = torch.from_numpy(self.corpus.conditions[i][start : start + self.length].astype(np.int64))
        if self.speakers is not None:
            out["speaker"] = self.speakers[i]
        return out


def collate_units(items: list[dict]) -> dict:
    """Right-padded (B, T) units (and durations, conditions), lengths (B,), speakers (B,) when known."""
    lengths = torch.tensor([len(x["units"]) for x in items])
    batch = {
        "units": torch.nn.utils.rnn.pad_sequence([x["units"] for x in items], batch_first=True),
        "lengths": lengths,
    }
    if "durations" in items[0]:
        batch["durations"] = torch.nn.utils.rnn.pad_sequence(
            [x["durations"] for x in items], batch_first=True, padding_value=1
        )
    if "condition" in items[0]:
        batch["condition"] = torch.nn.utils.rnn.pad_sequence([x["condition"] for x in items], batch_first=True)
    if "speaker" in items[0]:
        batch["speaker"] = torch.tensor([x["speaker"] for x in items])
    return batch
