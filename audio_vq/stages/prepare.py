"""The prepare stage: dataset root -> validated, split manifest.

    scan (corpora/<name>.py) -> decode every file in worker processes (validate, optionally
    cache a resampled copy) -> split train/valid/test -> manifest.jsonl, speakers.json,
    skipped.tsv, prepare.yaml [, <split>.tsv]

A bad file never aborts the run and a good file is never dropped: each file either lands in
the manifest or in ``skipped.tsv`` with its reason. Decoding results are logged as they arrive
(``out/.prepare/decoded.jsonl``), so an interrupted prepare resumes where it stopped and a rerun
on an unchanged corpus decodes nothing again.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import zlib
from collections import Counter, defaultdict
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from .. import audio
from ..atomic import atomic_write_text
from ..config import ConfigError
from ..corpora import CorpusError, get_scanner
from ..corpora.sources import read_source
from ..manifest import SKIPPED_NAME, SPLITS, Utterance, write_fairseq_tsv, write_manifest, write_skipped, write_speakers
from ..options import validate
from ..outputs import name_problem
from ..processes import die_with_parent

log = logging.getLogger(__name__)

STATE_DIR = ".prepare"
DECODE_LOG = "decoded.jsonl"
CACHE_DIR = "audio"
CACHE_SUBTYPE = "PCM_16"
DECODE_CHUNKSIZE = 8  # files per task sent to a worker: amortises inter-process overhead
IN_FLIGHT_PER_WORKER = 2  # chunks queued per worker: keeps workers busy, bounds what a crash takes down


@dataclass(frozen=True)
class Decoded:
    """What decoding one file found: its length and rate (of the cached copy when caching),
    or why it cannot be used."""

    key: str
    num_samples: int | None = None
    sample_rate: int | None = None
    path: str | None = None  # where the manifest should point (the cached copy, when caching)
    error: str | None = None


@dataclass
class PrepareResult:
    utterances: list[Utterance]
    skipped: list[tuple[str, str]]  # (file, reason)
    speakers: dict[str, int]


def run(cfg: DictConfig) -> PrepareResult:
    """Run the prepare stage for a composed ``prepare`` config (see configs/prepare.yaml)."""
    _check_config(cfg)
    out = Path(cfg.out).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    options = {k: v for k, v in OmegaConf.to_container(cfg.corpus, resolve=True).items() if k != "name"}
    scanned = _scan(cfg.corpus.name, cfg.root, options)
    found, skipped = _unique_ids(scanned)
    if not found:
        raise CorpusError(f"{cfg.root}: no audio files found for corpus={cfg.corpus.name}")

    decoded = decode_all(
        found, out / STATE_DIR / DECODE_LOG, out / CACHE_DIR, cfg.sample_rate, cfg.num_workers, cfg.cache_audio
    )
    utterances = []
    for utt, d in zip(found, decoded):
        if d.error is None and d.num_samples < cfg.min_seconds * d.sample_rate:
            d = Decoded(
                d.key, error=f"too short: {d.num_samples / d.sample_rate:.3f} s < min_seconds={cfg.min_seconds}"
            )
        if d.error is not None:
            skipped.append((utt.path, d.error))
            continue
        utt.num_samples, utt.sample_rate, utt.path, utt.source = d.num_samples, d.sample_rate, d.path, None
        utterances.append(utt)
    if not utterances:
        write_skipped(out, skipped)
        raise CorpusError(f"{cfg.root}: none of the {len(found)} files could be used (see {out / SKIPPED_NAME})")

    assign_splits(utterances, cfg.split)
    train_speakers = {u.speaker for u in utterances if u.split == "train"}
    write_manifest(out, utterances)
    speakers = write_speakers(out, train_speakers)
    write_skipped(out, skipped)
    if cfg.fairseq_tsv:
        for split in SPLITS:
            part = [u for u in utterances if u.split == split]
            if part:
                write_fairseq_tsv(out / f"{split}.tsv", part)
    atomic_write_text(out / "prepare.yaml", OmegaConf.to_yaml(cfg))
    return PrepareResult(utterances, skipped, speakers)


def main(cfg: DictConfig) -> int:
    """`audio-vq prepare`: run and print a summary."""
    result = run(cfg)
    print(summary(result, Path(cfg.out).expanduser()))
    return 0


def summary(result: PrepareResult, out: str | os.PathLike) -> str:
    """A few lines for the terminal: utterances, hours and speakers per split, skipped files."""
    lines = [f"wrote {Path(out) / 'manifest.jsonl'}"]
    for split in SPLITS:
        part = [u for u in result.utterances if u.split == split]
        hours = sum(u.duration for u in part) / 3600
        lines.append(
            f"  {split:5s}: {len(part):7d} utterances {hours:8.2f} h {len({u.speaker for u in part}):5d} speakers"
        )
    lines.append(f"  speakers.json: {len(result.speakers)} training speakers")
    if result.skipped:
        reasons = Counter(r.split(":")[0] for _, r in result.skipped)
        top = ", ".join(f"{n} {r}" for r, n in reasons.most_common(3))
        lines.append(f"  skipped {len(result.skipped)} file(s) ({top}): see {Path(out) / SKIPPED_NAME}")
    return "\n".join(lines)


def decode_all(
    utterances: list[Utterance],
    log_path: Path,
    cache_root: Path,
    sample_rate: int,
    num_workers: int,
    cache_audio: bool = False,
    decode: Callable[[dict], Decoded] | None = None,
) -> list[Decoded]:
    """Decode every utterance's file (in worker processes), reusing results logged by an
    earlier run for files whose size and mtime have not changed. Returns one Decoded per
    utterance, in order. Copies at ``sample_rate`` go under ``cache_root``: of every file with
    ``cache_audio``, and of every utterance whose audio is a source (not a file of its own).
    ``decode`` replaces the per-file function (a picklable top-level function taking a job
    dict), e.g. to wrap it."""
    jobs = [_job(u, cache_root, sample_rate, cache_audio) for u in utterances]
    done = _read_log(log_path)
    results: dict[str, Decoded] = {
        j["key"]: done[j["key"]] for j in jobs if j["key"] in done and _still_valid(done[j["key"]])
    }
    todo = [j for j in jobs if j["key"] not in results]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with (
        open(log_path, "a", encoding="utf-8") as logf,
        tqdm(total=len(jobs), initial=len(jobs) - len(todo), desc="decode", unit="file", dynamic_ncols=True) as bar,
    ):
        for d in _map(decode or _decode, todo, num_workers):
            results[d.key] = d
            logf.write(json.dumps(d.__dict__) + "\n")
            logf.flush()
            bar.update()
    return [results[j["key"]] for j in jobs]


def assign_splits(utterances: list[Utterance], cfg: DictConfig) -> None:
    """Set ``split`` on every utterance, in place.

    Held-out speakers go wholly to test; utterances with a corpus split (when
    ``use_corpus_splits``) keep it; the rest are split per speaker by a seeded shuffle, so each
    speaker is seen in training and the split does not depend on the order of the scan."""
    speakers = sorted({u.speaker for u in utterances})
    held = set(cfg.holdout_speakers)
    unknown = sorted(held - set(speakers))
    if unknown:
        raise ConfigError(f"split.holdout_speakers: unknown speaker(s) {', '.join(unknown)}")
    rest = [s for s in speakers if s not in held]
    if cfg.num_holdout_speakers > len(rest) - 1:
        raise ConfigError(
            f"split.num_holdout_speakers={cfg.num_holdout_speakers}: only {len(rest)} speakers "
            "left, and at least one must stay for training"
        )
    rng = np.random.default_rng(cfg.seed)
    held |= set(rng.permutation(rest)[: cfg.num_holdout_speakers].tolist())

    by_speaker: dict[str, list[Utterance]] = defaultdict(list)
    for u in utterances:
        if u.speaker in held:
            u.split = "test"
        elif u.split is None or not cfg.use_corpus_splits:
            by_speaker[u.speaker].append(u)
    for speaker, utts in by_speaker.items():
        utts.sort(key=lambda u: u.id)
        order = np.random.default_rng([cfg.seed, zlib.crc32(speaker.encode())]).permutation(len(utts))
        n_valid = int(np.floor(len(utts) * cfg.valid + 0.5))
        n_test = int(np.floor(len(utts) * cfg.test + 0.5))
        if n_valid + n_test >= len(utts):  # a speaker with few utterances still trains
            n_valid, n_test = min(n_valid, len(utts) - 1), 0
        for rank, i in enumerate(order):
            utts[i].split = "valid" if rank < n_valid else "test" if rank < n_valid + n_test else "train"


def _check_config(cfg: DictConfig) -> None:
    """The keys' own checks (PrepareOptions), then the rule between the split's fractions."""
    validate(cfg)
    if not cfg.split.valid + cfg.split.test < 1:
        raise ConfigError(f"split={OmegaConf.to_container(cfg.split)!r}: expected split.valid + split.test < 1")


def _scan(name: str, root: str, options: dict) -> list[Utterance]:
    scan = get_scanner(name)
    try:
        return list(scan(root, **options))
    except TypeError as e:  # an option the scanner does not take
        raise ConfigError(f"corpus={name}: {e}") from None


def _unique_ids(utterances: Iterable[Utterance]) -> tuple[list[Utterance], list[tuple[str, str]]]:
    """The utterances whose id is unique and whose id and speaker can be file names (they
    become ``<id>.wav`` and fields of unit files); the others as (path, reason)."""
    seen: dict[str, str] = {}
    unique, skipped = [], []
    for u in utterances:
        problem = next(
            (f"{key} {getattr(u, key)!r} {p}" for key in ("id", "speaker") if (p := name_problem(getattr(u, key)))),
            None,
        )
        if problem:
            skipped.append((u.path, problem))
        elif u.id in seen:
            skipped.append((u.path, f"duplicate id {u.id!r} (also {seen[u.id]})"))
        else:
            seen[u.id] = u.path
            unique.append(u)
    return unique, skipped


def _job(u: Utterance, cache_root: Path, sample_rate: int, cache_audio: bool) -> dict:
    """What decoding ``u`` takes: its file (or source: a span, a table's row, always written out
    under ``cache_root``), where the cached copy goes, and the key of its answer."""
    if u.source is not None:
        stamp = u.source.stamp()
    else:
        try:
            st = os.stat(u.path)
            stamp = f"{st.st_size}:{st.st_mtime_ns}"
        except OSError:
            stamp = "missing"
    cache = str(cache_root / u.speaker / f"{u.id}.wav") if cache_audio or u.source is not None else None
    # The key changes whenever the answer could: another file state, cache target or rate.
    key = f"{u.path}|{stamp}|{cache}|{sample_rate if cache else ''}"
    return {"key": key, "path": u.path, "source": u.source, "cache": cache, "sample_rate": sample_rate}


def _decode(job: dict) -> Decoded:
    """Decode one file fully (validating it); with a cache target, write the resampled copy."""
    try:
        if job.get("source") is not None:
            samples, rate = read_source(job["source"])
        else:
            samples, rate = audio.load_with_rate(job["path"], sample_rate=None)
        if job["cache"] is None:
            return Decoded(job["key"], len(samples), rate, job["path"])
        samples = audio.resample(samples, rate, job["sample_rate"])
        audio.save(job["cache"], np.clip(samples, -1.0, 1.0), job["sample_rate"], subtype=CACHE_SUBTYPE)
        return Decoded(job["key"], len(samples), job["sample_rate"], job["cache"])
    except audio.AudioError as e:
        return Decoded(job["key"], error=e.reason)
    except Exception as e:  # one odd file must not stop the run: report it
        return Decoded(job["key"], error=f"{type(e).__name__}: {' '.join(str(e).split())}")


def _map(fn: Callable[[dict], Decoded], jobs: list[dict], num_workers: int) -> Iterator[Decoded]:
    """``fn`` over ``jobs`` in ``num_workers`` processes, yielding results as they finish.

    A file that crashes the decoder itself (a segfault in a codec library kills the worker,
    where a Python exception would not) must not end the run: chunks are submitted a window at
    a time, the ones in flight when a worker dies are retried one at a time in a single worker,
    and a file that kills that worker too is reported as such."""
    if num_workers == 0 or len(jobs) <= 1:
        yield from map(fn, jobs)
        return
    chunks = [jobs[i : i + DECODE_CHUNKSIZE] for i in range(0, len(jobs), DECODE_CHUNKSIZE)]
    suspects: list[dict] = []
    while chunks:
        with _pool(num_workers) as pool:
            window = {}
            while chunks or window:
                broken = False
                while chunks and len(window) < IN_FLIGHT_PER_WORKER * num_workers:
                    try:
                        future = pool.submit(_map_chunk, fn, chunks[0])
                    except BrokenProcessPool:  # a worker died since the last wait: this chunk never ran
                        broken = True
                        break
                    window[future] = chunks.pop(0)
                finished, _ = wait(window, return_when=FIRST_COMPLETED)
                for future in finished:
                    chunk = window.pop(future)
                    try:
                        yield from future.result()
                    except BrokenProcessPool:
                        suspects.extend(chunk)
                        broken = True
                if broken:  # every chunk still in flight died with the pool
                    suspects.extend(job for chunk in window.values() for job in chunk)
                    log.warning("a decoding worker died; retrying %d file(s) one by one", len(suspects))
                    break
    # One worker, one file at a time: when the pool breaks, the file in flight killed it.
    pool = _pool(1) if suspects else None
    for job in suspects:
        try:
            yield pool.submit(fn, job).result()
        except BrokenProcessPool:
            yield Decoded(job["key"], error="crashed the decoder (its worker process died)")
            pool.shutdown()
            pool = _pool(1)
    if pool is not None:
        pool.shutdown()


def _map_chunk(fn: Callable[[dict], Decoded], chunk: list[dict]) -> list[Decoded]:
    return [fn(job) for job in chunk]


def _pool(num_workers: int) -> ProcessPoolExecutor:
    # spawn: workers must not inherit a parent's threads (torch, tqdm) through fork
    return ProcessPoolExecutor(
        max_workers=num_workers, mp_context=multiprocessing.get_context("spawn"), initializer=die_with_parent
    )


def _read_log(path: Path) -> dict[str, Decoded]:
    done: dict[str, Decoded] = {}
    if not path.exists():
        return done
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                d = Decoded(**json.loads(line))
            except (json.JSONDecodeError, TypeError):
                continue  # the last line of a killed run may be cut short
            done[d.key] = d
    return done


def _still_valid(d: Decoded) -> bool:
    """A logged success is reusable only if its cached copy is still there."""
    return d.error is not None or (d.path is not None and Path(d.path).exists())
