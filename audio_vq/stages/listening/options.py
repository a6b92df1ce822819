"""The keys of `audio-vq export-listening-test`, checked up front with one-line errors naming
the key (the decoding keys it shares with reconstruct / convert are checked by the Renderer, and
the model, seed and out the export reads are carried here too, so it reads one object)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from ...config import ConfigError, require
from ...options import ExportListeningTestOptions, validate
from . import plan, webmushra
from .key import BUILTIN_SYSTEMS
from .kinds import KINDS, Kind

SYSTEM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class Options:
    """The export's keys, checked (the decoding keys are checked by the Renderer): its own, and
    the model, seed and output folder it reads of the shared ones."""

    model: str
    seed: int
    out: Path
    data: str
    kind: Kind
    num_utterances: int
    split: str
    max_seconds: float | None
    min_seconds: float
    targets: plan.TargetSpec
    systems: dict[str, Path]
    include_reference: bool
    loudness: float
    peak_ceiling: float
    sample_rate: int | None
    strict: bool
    test_name: str | None
    webmushra_prefix: str | None
    beaqlejs_prefix: str | None


def check_options(cfg: DictConfig) -> Options:
    """The export's keys (ExportListeningTestOptions' checks, then the rules between keys: the
    targets, the systems' folders, webMUSHRA's strict limit)."""
    validate(cfg, ExportListeningTestOptions)
    kind = KINDS[require(cfg, "kind", lambda v: v in KINDS, " | ".join(KINDS))]  # the table is the stage's
    max_seconds = cfg.max_seconds
    if kind.page_type in webmushra.STRICT_PAGE_TYPES and cfg.strict:  # webMUSHRA's strict check: no stimulus over 12 s
        max_seconds = min(max_seconds or webmushra.MUSHRA_MAX_SECONDS, webmushra.MUSHRA_MAX_SECONDS)
    return Options(
        model=str(cfg.model),
        seed=int(cfg.seed),
        out=Path(cfg.out).expanduser(),
        data=cfg.data,
        kind=kind,
        num_utterances=cfg.num_utterances,
        split=cfg.split,
        max_seconds=max_seconds,
        min_seconds=float(cfg.min_seconds),
        targets=plan.parse_targets(cfg.targets, kind.default_targets),
        systems=check_systems(cfg.systems),
        include_reference=cfg.include_reference,
        loudness=float(cfg.loudness),
        peak_ceiling=float(cfg.peak_ceiling),
        sample_rate=cfg.sample_rate,
        strict=cfg.strict,
        test_name=cfg.test_name,
        webmushra_prefix=cfg.webmushra_prefix,
        beaqlejs_prefix=cfg.beaqlejs_prefix,
    )


def check_systems(value) -> dict[str, Path]:
    """`systems`: name -> an existing folder; names plain and not one of the built-in systems."""
    if value is None:
        return {}
    if not OmegaConf.is_dict(value) and not isinstance(value, dict):
        raise ConfigError(f"systems={value!r}: expected name -> folder, e.g. +systems.baseline=<folder>")
    out = {}
    for name, folder in value.items():
        key = f"systems.{name}"
        if not SYSTEM_NAME.match(str(name)) or name in BUILTIN_SYSTEMS:
            raise ConfigError(
                f"{key}: expected a plain name (letters, digits, _ . -) other than {', '.join(BUILTIN_SYSTEMS)}"
            )
        path = Path(str(folder)).expanduser()
        if not path.is_dir():
            raise ConfigError(f"{key}={folder}: no such folder")
        out[str(name)] = path
    return out
