"""`audio-vq evaluate-prior`: how well a prior models held-out units, beside n-gram baselines
fitted in the same run, and what its samples look like next to real units.

    held-out units (units=, or the test split train-prior left out of its training file)
      -> bits per unit and per second: the prior (windows of max_len - 1 units) and interpolated
         Witten-Bell 1/2/3-grams fitted on the prior's training utterances (evaluate/ngram.py)
      -> the share of utterances the prior scores higher than the same one reversed in time, and
         than it with its runs shuffled (seeded)
      -> num_samples samples: unigram and bigram KL from held-out data, mean run length, and
         auto-BLEU-2 (the share of a sequence's deduplicated bigrams that occur elsewhere in it:
         GSLM's repetition score), for the samples and for held-out data
      -> <out>/report.json, report.md
"""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig

from ...atomic import atomic_write_text
from ...checkpoint import load_prior
from ...config import ConfigError
from ...models.prior import UnitPrior
from ...options import validate
from ...units.corpus import UnitCorpus, held_out, load_units, speakers_of, split_corpus
from ...units.extraction import deduplicate
from .ngram import WittenBell

NGRAM_ORDERS = (1, 2, 3)
LOG2 = math.log(2)


def evaluate_prior(cfg: DictConfig) -> int:
    validate(cfg)
    if not Path(cfg.prior).expanduser().is_dir():
        raise ConfigError(f"prior={cfg.prior!r}: expected a prior directory")
    prior, pcfg, speakers = load_prior(cfg.prior)
    train, test, test_speakers, valid = _splits(cfg, pcfg, speakers)
    frame_rate = pcfg["units"].get("frame_rate")
    dedup = prior.duration_head is not None
    report = {
        "prior": str(Path(cfg.prior).expanduser().resolve()),
        "held_out": len(test.ids),
        "train": len(train.ids),
        "valid": valid,
        "exported_step": pcfg.get("exported_step"),
        "codebook_size": test.codebook_size,
        "deduplicated": dedup,
        "frame_rate": frame_rate,
        "level": pcfg["units"].get("level"),
    }
    conditions = test.conditions or [None] * len(test.units)
    report["condition_level"] = test.condition_level  # a conditional prior: its bits are given that level
    prior_bits = [_bits(prior, u, s, c) for u, s, c in zip(test.units, test_speakers, conditions)]
    units = sum(len(u) for u in test.units)
    frames = sum(int(d.sum()) for d in test.durations) if dedup else units
    per_second = (units / (frames / frame_rate)) if frame_rate else None
    rows = {"prior": float(sum(b.sum() for b in prior_bits)) / units}
    for n in NGRAM_ORDERS:
        rows[f"{n}-gram (Witten-Bell)"] = WittenBell(n, test.codebook_size).fit(train.units).bits_per_unit(test.units)
    report["bits"] = {
        name: {"bits_per_unit": b, "bits_per_second": b * per_second if per_second else None}
        for name, b in rows.items()
    }
    report["prior_below_best_ngram"] = bool(rows["prior"] < min(v for k, v in rows.items() if k != "prior"))
    report["preferences"] = _preferences(prior, test, test_speakers, prior_bits, cfg.seed)
    report["samples"] = _sample_stats(prior, test, test_speakers, cfg)
    out = Path(cfg.out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "report.json", json.dumps(report, indent=1) + "\n")
    atomic_write_text(out / "report.md", _markdown(report))
    print(
        f"prior {rows['prior']:.3f} bits/unit; best n-gram "
        f"{min(v for k, v in rows.items() if k != 'prior'):.3f}; real over reversed "
        f"{report['preferences']['real_over_reversed']:.0%}; written to {out}"
    )
    return 0


def _splits(cfg: DictConfig, pcfg: dict, speakers: dict[str, int]) -> tuple[UnitCorpus, UnitCorpus, list, int]:
    """(the prior's training utterances, the held-out ones, their speaker indices or None, the
    number of valid utterances the prior was selected on)."""
    dedup = bool(pcfg["units"]["deduplicated"])
    k = int(pcfg["units"]["codebook_size"])
    split = pcfg.get("split", {})
    level = pcfg["units"].get("level")  # the level of a file of several codebooks (None: one codebook)
    condition_level = pcfg["units"].get("condition_level")
    source = load_units(
        pcfg["units"]["source"],
        dedup,
        k,
        key="the prior's training units",
        level=level,
        condition_level=condition_level,
    )
    if "test_fraction" in split:  # train / valid / test: the prior was selected on valid, never on test
        parts = split_corpus(
            source,
            dedup,
            split["seed"],
            split["test_fraction"],
            split["valid_fraction"],
            split.get("test"),
            split.get("valid"),
        )
        train, test, valid = parts["train"], parts["test"], len(parts["valid"].ids)
    elif split.get("valid"):  # a prior from before the test split: its held-out units were its validation's
        train, test, valid = (
            source,
            load_units(
                split["valid"], dedup, k, key="the prior's valid units", level=level, condition_level=condition_level
            ),
            0,
        )
    else:
        marks = held_out(source.ids, split.get("valid_fraction", 0.1), split.get("seed", 0))
        train = source.subset([i for i, m in enumerate(marks) if not m])
        test, valid = source.subset([i for i, m in enumerate(marks) if m]), 0
    if cfg.units is not None:
        test = load_units(cfg.units, dedup, k, level=level, condition_level=condition_level)
        held = set(test.ids)
        train = train.subset([i for i, uid in enumerate(train.ids) if uid not in held])
    manifest = cfg.manifest or split.get("manifest")
    if speakers and manifest is None:
        raise ConfigError(
            "manifest: the prior has speakers; give the manifest that names the held-out utterances' "
            "speakers (manifest=...)"
        )
    names = speakers_of(test, manifest) if speakers else [None] * len(test.ids)
    if speakers:
        unknown = sorted({n for n in names if n not in speakers})
        if unknown:
            raise ConfigError(f"units: held-out speakers the prior has no start token for: {', '.join(unknown)}")
    return train, test, [speakers[n] if speakers else None for n in names], valid


@torch.no_grad()
def _bits(prior: UnitPrior, units: np.ndarray, speaker: int | None, condition: np.ndarray | None = None) -> np.ndarray:
    """-log2 P of each unit (given its condition, for a conditional prior), in windows of
    max_len - 1 units after the start token."""
    window = prior.max_len - 1
    out = []
    spk = None if speaker is None else torch.tensor([speaker])
    for a in range(0, len(units), window):
        chunk = torch.from_numpy(np.asarray(units[a : a + window], np.int64))[None]
        tokens = torch.cat([prior.start_tokens(spk, 1, "cpu"), chunk[:, :-1]], dim=1)
        given = None if condition is None else torch.from_numpy(np.asarray(condition[a : a + window], np.int64))[None]
        logp = prior(tokens, condition=given).unit_logits.log_softmax(-1)
        out.append(-logp[0].gather(-1, chunk[0, :, None])[:, 0].numpy() / LOG2)
    return np.concatenate(out)


def _preferences(prior: UnitPrior, test: UnitCorpus, speakers: list, bits: list[np.ndarray], seed: int) -> dict:
    """Shares of held-out utterances (their first window) scored higher than reversed / runs
    shuffled; ``bits`` are the utterances' own per-unit bits (_bits), whose first window is reused."""
    rng = np.random.default_rng(seed)
    window = prior.max_len - 1
    reversed_wins = shuffled_wins = 0
    conditions = test.conditions or [None] * len(test.units)
    for u, s, b, c in zip(test.units, speakers, bits, conditions):
        # a conditional prior's units move with their conditions: (unit, condition) pairs
        pairs = np.atleast_2d(np.asarray(u[:window], np.int64))
        if c is not None:
            pairs = np.stack([pairs[0], np.asarray(c[:window], np.int64)])
        real = b[:window].sum()
        backwards = pairs[:, ::-1].copy()
        reversed_wins += real < _bits(prior, backwards[0], s, None if c is None else backwards[1]).sum()
        runs, durations = deduplicate(pairs)
        order = rng.permutation(runs.shape[1])
        shuffled = (
            np.repeat(runs[:, order], durations[order], axis=1) if prior.duration_head is None else runs[:, order]
        )
        shuffled_wins += real < _bits(prior, shuffled[0, :window], s, None if c is None else shuffled[1, :window]).sum()
    n = max(1, len(test.units))
    return {
        "real_over_reversed": float(reversed_wins) / n,
        "real_over_runs_shuffled": float(shuffled_wins) / n,
        "utterances": n,
    }


def _sample_stats(prior: UnitPrior, test: UnitCorpus, speakers: list, cfg: DictConfig) -> dict:
    length = int(np.median([len(u) for u in test.units]))
    spk = None if speakers[0] is None else torch.tensor([speakers[i % len(speakers)] for i in range(cfg.num_samples)])
    condition = None
    if test.conditions is not None:  # sample i is drawn given the condition of a held-out utterance long enough
        long_enough = [c[:length] for c in test.conditions if len(c) >= length]
        condition = torch.from_numpy(np.stack([long_enough[i % len(long_enough)] for i in range(cfg.num_samples)]))
    new, _ = prior.generate(
        length,
        batch=cfg.num_samples,
        speakers=spk,
        generator=torch.Generator().manual_seed(cfg.seed),
        condition=condition,
    )
    samples = [row.numpy().astype(np.int64) for row in new]
    real = [np.asarray(u, np.int64) for u in test.units]
    k = test.codebook_size
    return {
        "num_samples": cfg.num_samples,
        "length": length,
        "unigram_kl_bits": _kl(_ngrams(real, 1), _ngrams(samples, 1), k),
        "bigram_kl_bits": _kl(_ngrams(real, 2), _ngrams(samples, 2), k * k),
        "mean_run_length": {"samples": _run_length(samples), "held_out": _run_length(real)},
        "auto_bleu_2": {"samples": _auto_bleu(samples), "held_out": _auto_bleu(real)},
    }


def _ngrams(seqs: list[np.ndarray], n: int) -> Counter:
    c: Counter = Counter()
    for s in seqs:
        s = s.tolist()
        c.update(tuple(s[i : i + n]) for i in range(len(s) - n + 1))
    return c


def _kl(p: Counter, q: Counter, support: int) -> float:
    """KL(p || q) in bits, both add-one smoothed over ``support`` outcomes."""
    keys = set(p) | set(q)
    tp, tq = sum(p.values()) + support, sum(q.values()) + support
    unseen = support - len(keys)
    kl = sum((p[x] + 1) / tp * math.log2(((p[x] + 1) / tp) / ((q[x] + 1) / tq)) for x in keys)
    return kl + unseen * (1 / tp) * math.log2((1 / tp) / (1 / tq))


def _run_length(seqs: list[np.ndarray]) -> float:
    runs = [len(deduplicate(s)[0]) for s in seqs]
    return sum(len(s) for s in seqs) / max(1, sum(runs))


def _auto_bleu(seqs: list[np.ndarray], n: int = 2) -> float:
    """Mean over sequences of the share of their deduplicated n-grams that occur elsewhere in them."""
    scores = []
    for s in seqs:
        d = deduplicate(s)[0].tolist()
        grams = [tuple(d[i : i + n]) for i in range(len(d) - n + 1)]
        if grams:
            counts = Counter(grams)
            scores.append(sum(counts[g] > 1 for g in grams) / len(grams))
    return float(np.mean(scores)) if scores else 0.0


def _markdown(r: dict) -> str:
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    selected = f", weights of step {r['exported_step']}" if r.get("exported_step") is not None else ""
    lines = [
        "# Prior evaluation",
        "",
        f"{r['held_out']} held-out utterances ({r['train']} train, {r['valid']} valid"
        f"{selected}), K = "
        f"{r['codebook_size']}, {'deduplicated' if r['deduplicated'] else 'frame-level'} units"
        + ("" if r.get("level") is None else f" of level {r['level']}")
        + (
            ""
            if r.get("condition_level") is None
            else f", the prior's bits given level {r['condition_level']} (the n-grams see no condition)"
        )
        + ".",
        "",
        "| model | bits/unit | bits/s |",
        "|---|---|---|",
    ]
    lines += [f"| {k} | {fmt(v['bits_per_unit'])} | {fmt(v['bits_per_second'])} |" for k, v in r["bits"].items()]
    p, s = r["preferences"], r["samples"]
    lines += [
        "",
        f"Prior below the best n-gram: {'yes' if r['prior_below_best_ngram'] else 'no'}.",
        f"Real utterance scored above its reversal: {p['real_over_reversed']:.0%}; above its runs shuffled: "
        f"{p['real_over_runs_shuffled']:.0%} (of {p['utterances']}).",
        "",
        f"Samples ({s['num_samples']} of {s['length']} units): unigram KL {s['unigram_kl_bits']:.3f} bits, "
        f"bigram KL {s['bigram_kl_bits']:.3f} bits from held-out data; mean run length "
        f"{s['mean_run_length']['samples']:.2f} (held-out {s['mean_run_length']['held_out']:.2f}); "
        f"auto-BLEU-2 {s['auto_bleu_2']['samples']:.3f} (held-out {s['auto_bleu_2']['held_out']:.3f}).",
    ]
    return "\n".join(lines) + "\n"
