"""The extract stage: every input's units, written in one of the unit formats.

    inputs (manifest order) -> blocks of ``block_size`` utterances -> parts -> merge -> output

Work is cut into blocks by position in the input list. Each finished block is written
atomically as ``<output>.parts/part_NNNNNN.npz`` (codes, plus the files that failed to load),
so a killed run started again skips finished blocks and redoes at most one: the merged result
equals an uninterrupted run's, with no duplicates and no gaps. Shards (``shard=i
num_shards=n``, or each torchrun rank) take contiguous ranges of blocks and write into the same
parts folder; the merge (automatic with one shard, rank 0 under torchrun, else ``merge=true``)
streams the parts in block order into the output, then writes skipped.tsv, dict.km.txt and the
meta.json sidecar, and removes the parts. Extraction has no randomness, and the encoder masks
padding, so units do not depend on batch size, workers, threads or shards.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from omegaconf import DictConfig
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from .. import audio, contours, pitch
from ..atomic import atomic_path, atomic_write_text
from ..config import ConfigError
from ..distributed import setup
from ..manifest import SKIPPED_NAME, write_skipped
from ..options import validate
from ..outputs import check_not_inputs, exclusive, remove_temporaries
from ..processes import die_with_parent
from ..rendering import Source, read_sources
from ..units.extraction import UnitExtractor
from ..units.formats import (
    DICT_NAME,
    Record,
    UnitFormatError,
    UnitsMeta,
    detect_format,
    meta_path,
    open_writer,
    read_meta,
    read_units,
    write_dictionary,
    write_units,
    writer_class,
)

log = logging.getLogger(__name__)

PART_PATTERN = "part_{:06d}.npz"
FINGERPRINT_NAME = "fingerprint.json"


# ---------------------------------------------------------------------------------------------
# Loading audio in DataLoader workers


class _Waves(Dataset):
    """(position, waveform or None, reason) of each source, at the model's sample rate."""

    def __init__(self, sources: list[Source], positions: list[int], sample_rate: int):
        self.sources, self.positions, self.sample_rate = sources, positions, sample_rate

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, i: int):
        pos = self.positions[i]
        try:
            return pos, audio.load(self.sources[pos].path, self.sample_rate), None
        except audio.AudioError as e:
            return pos, None, e.reason


def _worker_init(_: int) -> None:
    die_with_parent()
    torch.set_num_threads(1)  # decoding is the workers' job; the main process owns the cores


# ---------------------------------------------------------------------------------------------
# The command


def extract(cfg: DictConfig) -> int:
    """`audio-vq extract`: units of every input -> ``output`` in ``format``."""
    _check(cfg)
    ctx = setup(cfg.device)
    shard, num_shards = (ctx.rank, ctx.world) if ctx.world > 1 else (cfg.shard, cfg.num_shards)
    if shard >= num_shards:
        raise ConfigError(f"shard={shard}: must be < num_shards={num_shards}")
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    sources = read_sources(cfg.input)
    if cfg.split is not None:
        sources = _split(cfg, sources)
        if not sources:
            raise ConfigError(f"split={cfg.split}: input={cfg.input} has no utterances in this split")
    output = _output(cfg)
    check_not_inputs(
        _written(output, cfg.format),
        [cfg.input, *(s.path for s in sources), *Path(cfg.model).expanduser().iterdir()],
        "output",
    )
    extractor = UnitExtractor.from_pretrained(cfg.model, ctx.device, cfg.chunk_seconds, cfg.levels)
    if cfg.pitch_bins is not None:
        tracker = contours.tracker_of(extractor.model)
        if pitch.unavailable(tracker):
            raise ConfigError(f"pitch_bins={cfg.pitch_bins}: {pitch.unavailable(tracker)}")
    parts = _parts_dir(output, cfg.format)
    fingerprint = _fingerprint(extractor, sources, cfg.block_size, cfg.pitch_bins)

    if _up_to_date(output, cfg, fingerprint):
        if ctx.primary:
            print(f"{output} is up to date ({len(sources)} utterances); delete it to extract again")
        return 0
    if ctx.primary:
        _claim_parts(parts, fingerprint)
    ctx.barrier()
    lock = ".lock-merge" if cfg.merge else f".lock-shard-{shard}-of-{num_shards}"
    with exclusive(parts, f"output={cfg.output} ({'merge' if cfg.merge else f'shard {shard} of {num_shards}'})", lock):
        if not cfg.merge:
            _extract_blocks(cfg, extractor, sources, parts, shard, num_shards)
        ctx.barrier()
        if ctx.world > 1 or cfg.merge or num_shards == 1:
            if ctx.primary:
                remove_temporaries(output.parent, of=[p.name for p in _written(output, cfg.format)])
                _merge(cfg, extractor, sources, parts, output, fingerprint)
        else:
            print(
                f"shard {shard} of {num_shards} done; once every shard is, merge them with the same "
                f"arguments plus merge=true"
            )
    ctx.barrier()
    return 0


def _output(cfg: DictConfig) -> Path:
    """``output=`` as a path, refused when of the wrong kind for the format (the options refuse an empty one)."""
    output = Path(cfg.output).expanduser()
    fmt = writer_class(cfg.format)
    if fmt.writes_folder:
        if output.exists() and not output.is_dir():
            raise ConfigError(f"output={cfg.output}: is a file; format={cfg.format} writes a folder")
    elif output.is_dir():
        raise ConfigError(
            f"output={cfg.output}: is a folder; format={cfg.format} writes a file "
            f"(e.g. output={output / 'units'}{fmt.suffix})"
        )
    return output


def _written(output: Path, fmt: str) -> list[Path]:
    """Every file the merge writes for ``output`` (the unit file(s), its meta, and the shared
    dict.km.txt and skipped.tsv beside it)."""
    return [
        *writer_class(fmt).files(output),
        meta_path(output, fmt),
        output.parent / DICT_NAME,
        output.parent / SKIPPED_NAME,
    ]


def _check(cfg: DictConfig) -> None:
    """The keys' own checks (ExtractOptions), then the rules between them."""
    validate(cfg)
    writer_class(cfg.format).check_available()
    fixed = writer_class(cfg.format).deduplicated  # None: the format holds either form
    if cfg.deduplicate is None:
        cfg.deduplicate = bool(fixed)
    if fixed is not None and cfg.deduplicate != fixed:
        raise ConfigError(
            f"deduplicate={str(cfg.deduplicate).lower()}: format={cfg.format} is always "
            f"{'deduplicated' if fixed else 'frame-level'}"
        )
    if cfg.pitch_bins is not None and writer_class(cfg.format).needs_codebook:
        raise ConfigError(
            f"pitch_bins={cfg.pitch_bins}: format={cfg.format} writes codebook vectors, and the pitch "
            "stream has none; choose another format"
        )
    if not Path(cfg.model).expanduser().is_dir():
        raise ConfigError(f"model={cfg.model}: no such model directory")


def _split(cfg: DictConfig, sources: list[Source]) -> list[Source]:
    if any(s.split is None for s in sources):
        raise ConfigError(f"split={cfg.split}: input={cfg.input} is not a manifest, so it has no splits")
    return [s for s in sources if s.split == cfg.split]


def _parts_dir(output: Path, fmt: str) -> Path:
    base = writer_class(fmt).stem(output)
    return base.with_name(base.name + ".parts")


def _fingerprint(extractor: UnitExtractor, sources: list[Source], block_size: int, pitch_bins: int | None) -> dict:
    """What the parts depend on: a rerun with another model, input list or pitch stream must
    not reuse them."""
    ids = hashlib.sha256("\n".join(f"{s.id}\t{s.path}" for s in sources).encode("utf-8")).hexdigest()
    fingerprint = {
        "model_checksum": extractor.checksum,
        "inputs_sha256": ids,
        "num_inputs": len(sources),
        "block_size": block_size,
    }
    if extractor.model.num_quantizers > 1:  # (one codebook: the fingerprint format_version 1 wrote)
        fingerprint["levels"] = extractor.num_quantizers
    if pitch_bins is not None:
        fingerprint["pitch_bins"] = pitch_bins
    return fingerprint


def _up_to_date(output: Path, cfg: DictConfig, fingerprint: dict) -> bool:
    m = meta_path(output, cfg.format)
    if not m.is_file() or _parts_dir(output, cfg.format).exists():
        return False
    try:
        meta = read_meta(m)
    except UnitFormatError:
        return False
    return (
        meta.extra.get("fingerprint") == fingerprint
        and meta.format == cfg.format
        and meta.deduplicated == cfg.deduplicate
    )


def _claim_parts(parts: Path, fingerprint: dict) -> None:
    path = parts / FINGERPRINT_NAME
    if path.is_file():
        if json.loads(path.read_text(encoding="utf-8")) != fingerprint:
            raise ConfigError(
                f"output: {parts} holds parts of another extraction (different model, inputs or "
                "block_size); delete that folder to start over"
            )
        return
    parts.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(fingerprint, indent=2) + "\n")


def _blocks_of(shard: int, num_shards: int, num_blocks: int) -> range:
    return range(shard * num_blocks // num_shards, (shard + 1) * num_blocks // num_shards)


def _extract_blocks(
    cfg: DictConfig, extractor: UnitExtractor, sources: list[Source], parts: Path, shard: int, num_shards: int
) -> None:
    """Extract the blocks of this shard that have no part yet; write each part when complete."""
    bs = cfg.block_size
    num_blocks = -(-len(sources) // bs)
    mine = _blocks_of(shard, num_shards, num_blocks)
    remove_temporaries(parts, of=[PART_PATTERN.format(b) for b in mine])  # a killed run's half-written
    # part; only this shard's blocks, whose lock is held: other shards may be writing theirs
    todo = [b for b in mine if not (parts / PART_PATTERN.format(b)).exists()]
    positions = [p for b in todo for p in range(b * bs, min((b + 1) * bs, len(sources)))]
    total = sum(min((b + 1) * bs, len(sources)) - b * bs for b in mine)
    if not positions:
        return
    loader = DataLoader(
        _Waves(sources, positions, extractor.sample_rate),
        batch_size=cfg.batch_size,
        num_workers=cfg.num_workers,
        collate_fn=list,
        worker_init_fn=_worker_init,
        prefetch_factor=2 if cfg.num_workers else None,
    )
    pending: dict[int, tuple] = {}  # position -> (codes, num_samples) or (None, reason)
    blocks = iter(todo)
    block = next(blocks)
    desc = "extract" if num_shards == 1 else f"extract shard {shard}/{num_shards}"
    with tqdm(total=total, initial=total - len(positions), desc=desc, unit="utt", dynamic_ncols=True) as bar:
        for batch in loader:
            good = [(pos, wave) for pos, wave, _ in batch if wave is not None]
            for pos, _, reason in batch:
                if reason is not None:
                    log.warning("skipping %s: %s", sources[pos].path, reason)
                    pending[pos] = (None, reason)
            if good:
                for (pos, wave), units in zip(good, extractor.extract_batch([w for _, w in good])):
                    codes = units.codes
                    if cfg.pitch_bins is not None:  # the pitch stream: the last level
                        speaker = extractor.model.speaker_index.get(sources[pos].speaker)
                        stream = contours.pitch_codes(extractor.model, wave, codes.shape[-1], speaker, cfg.pitch_bins)
                        codes = np.vstack([codes, stream[None]])
                    pending[pos] = (codes, units.num_samples)
            bar.update(len(batch))
            while block is not None and all(
                p in pending for p in range(block * bs, min((block + 1) * bs, len(sources)))
            ):
                _write_part(parts, block, sources, pending, bs)
                block = next(blocks, None)


def _write_part(parts: Path, block: int, sources: list[Source], pending: dict, bs: int) -> None:
    span = range(block * bs, min((block + 1) * bs, len(sources)))
    done = [p for p in span if pending[p][0] is not None]
    failed = [p for p in span if pending[p][0] is None]
    arrays = {
        "ids": np.array([sources[p].id for p in done], dtype=str),
        "codes": (np.concatenate([pending[p][0] for p in done], axis=1) if done else np.zeros((1, 0))).astype(np.int32),
        "offsets": np.r_[0, np.cumsum([pending[p][0].shape[-1] for p in done])].astype(np.int64),
        "num_samples": np.array([pending[p][1] for p in done], dtype=np.int64),
        "skipped_paths": np.array([sources[p].path for p in failed], dtype=str),
        "skipped_reasons": np.array([pending[p][1] for p in failed], dtype=str),
    }
    with atomic_path(parts / PART_PATTERN.format(block)) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
    for p in span:
        del pending[p]


def _read_parts(parts: Path, num_blocks: int, skipped: list) -> Iterator[Record]:
    for b in range(num_blocks):
        with np.load(parts / PART_PATTERN.format(b), allow_pickle=False) as z:
            offsets = z["offsets"]
            codes = z["codes"].astype(np.int64)  # (Q, total)
            one = codes.shape[0] == 1  # one codebook: (n,) records, as unit files hold them
            for i, uid in enumerate(z["ids"]):
                level_codes = codes[:, offsets[i] : offsets[i + 1]]
                yield Record(str(uid), level_codes[0] if one else level_codes, None, int(z["num_samples"][i]))
            skipped.extend(zip(z["skipped_paths"].tolist(), z["skipped_reasons"].tolist()))


def _merge(
    cfg: DictConfig, extractor: UnitExtractor, sources: list[Source], parts: Path, output: Path, fingerprint: dict
) -> None:
    num_blocks = -(-len(sources) // cfg.block_size)
    missing = [b for b in range(num_blocks) if not (parts / PART_PATTERN.format(b)).exists()]
    if missing:
        shards = sorted(
            {s for s in range(cfg.num_shards) for b in missing if b in _blocks_of(s, cfg.num_shards, num_blocks)}
        )
        raise ConfigError(
            f"merge: {len(missing)} of {num_blocks} blocks are not extracted yet "
            f"(shards {', '.join(map(str, shards))} of num_shards={cfg.num_shards} unfinished)"
        )
    levels = extractor.num_quantizers + (cfg.pitch_bins is not None)
    rates = [*extractor.frame_rates, *([extractor.frame_rate] if cfg.pitch_bins is not None else [])]
    meta = UnitsMeta(
        cfg.format,
        extractor.frame_rate,
        extractor.codebook_size,
        extractor.sample_rate,
        extractor.checksum,
        cfg.deduplicate,
        num_codebooks=levels,
        frame_rates=rates if levels > 1 else None,
        pitch_bins=cfg.pitch_bins,
        extra={"model": str(Path(cfg.model).expanduser().resolve()), "hop": extractor.hop, "fingerprint": fingerprint},
    )
    skipped: list[tuple[str, str]] = []
    known = {s.id: s for s in sources}  # each utterance's speaker and file, for the formats that keep them
    writer = open_writer(output, meta, extractor.codebook if writer_class(cfg.format).needs_codebook else None)
    try:
        for record in tqdm(
            _read_parts(parts, num_blocks, skipped), total=len(sources), desc="merge", unit="utt", dynamic_ncols=True
        ):
            source = known[record.id]
            writer.write(replace(record, speaker=source.speaker, path=str(Path(source.path).expanduser().resolve())))
        meta.extra["skipped"] = len(skipped)
    except BaseException:
        writer.abort()
        raise
    folder = output.parent
    if skipped:
        write_skipped(folder, skipped)
    write_dictionary(folder, extractor.codebook_size)
    writer.close()  # meta.json last: its presence means the output is whole
    shutil.rmtree(parts)
    print(
        f"wrote units of {meta.num_utterances} utterance(s) to {output} ({cfg.format}, "
        f"{extractor.frame_rate:g} frames/s, K={extractor.codebook_size})"
        + (f"; skipped {len(skipped)}, see {folder / 'skipped.tsv'}" if skipped else "")
    )


# ---------------------------------------------------------------------------------------------
# units-convert


def units_convert(cfg: DictConfig) -> int:
    """`audio-vq units-convert`: read a unit file in any format, write it in another."""
    validate(cfg)
    writer_class(cfg.format).check_available()
    source = Path(cfg.input).expanduser()
    try:
        fmt_in = cfg.input_format or detect_format(source)
        m = meta_path(source, fmt_in)
        meta_file = read_meta(m) if m.is_file() else None
        levels = meta_file.num_codebooks if meta_file else 1
        pitch_bins = meta_file.pitch_bins if meta_file else None
    except UnitFormatError as e:
        raise ConfigError(f"input={cfg.input}: {e}") from None
    codebook, model_meta = None, {}
    if cfg.model is not None:
        extractor = UnitExtractor.from_pretrained(cfg.model)
        content = levels - (pitch_bins is not None)  # the pitch stream has no codebook
        if content > extractor.num_quantizers:
            raise ConfigError(
                f"model={cfg.model}: has {extractor.num_quantizers} codebook(s), input={cfg.input} holds {content}"
            )
        codebook = extractor.codebook[:content]  # a file of the first n levels: their codebooks
        rates = [*extractor.frame_rates[:content], *([extractor.frame_rate] if pitch_bins is not None else [])]
        model_meta = dict(
            frame_rate=extractor.frame_rate,
            codebook_size=extractor.codebook_size,
            sample_rate=extractor.sample_rate,
            model_checksum=extractor.checksum,
            frame_rates=rates if levels > 1 else None,
        )
    try:
        meta_in, records = read_units(source, fmt_in, codebook)
    except UnitFormatError as e:
        raise ConfigError(f"input={cfg.input}: {e}") from None
    target = writer_class(cfg.format)
    if target.needs_codebook and codebook is None:
        raise ConfigError(f"format={cfg.format}: writing codebook vectors needs model=<model dir>")
    if target.needs_codebook and pitch_bins is not None:
        raise ConfigError(f"format={cfg.format}: input={cfg.input} holds a pitch stream, which has no codebook vectors")
    base = {
        k: getattr(meta_in, k, None)
        for k in ("frame_rate", "codebook_size", "sample_rate", "model_checksum", "frame_rates")
    }
    base.update(model_meta)  # the model's own values win
    if cfg.deduplicate is not None:
        dedup = cfg.deduplicate
    else:  # keep the input's form where the target has room for durations; never lose the timing
        dedup = bool(meta_in and meta_in.deduplicated) and target.holds_durations
    meta = UnitsMeta(
        cfg.format,
        deduplicated=dedup,
        extra={"converted_from": str(cfg.input)},
        num_codebooks=levels,
        pitch_bins=pitch_bins,
        **base,
    )
    output = _output(cfg)
    check_not_inputs(_written(output, cfg.format), [source, *source.parent.glob(f"{source.stem}.*")], "output")
    try:
        first = next(records, None)
        if first is None:
            raise ConfigError(f"input={cfg.input}: no utterances in this unit file")
        write_units(output, itertools.chain([first], records), meta, codebook)
    except UnitFormatError as e:
        raise ConfigError(f"input={cfg.input}: {e}") from None
    if meta.codebook_size:
        write_dictionary(output.parent, meta.codebook_size)
    print(f"wrote {meta.num_utterances} utterance(s) to {output} ({cfg.format})")
    return 0
