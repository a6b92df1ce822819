"""`audio-vq listening-results`: a listening test's answers, de-anonymised with its key.csv,
post-screened, and summarised per system with confidence intervals.

Inputs are what the apps give back (answers.py reads them): webMUSHRA's CSVs (mushra.csv,
paired_comparison.csv, lms.csv for ab, lss.csv for mos), BeaqleJS's result files (one, or a
folder of them), or a hand-made preference CSV (trial_id, choice_answer[, listener]).

Outputs in `out`: results.json, results.csv and results.md (per system: n, mean or proportion,
confidence interval; how listeners were told apart), ratings.csv (every answer with what it was
about), results.png (bars with the intervals as error bars).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections import defaultdict
from pathlib import Path

from omegaconf import DictConfig

from ...atomic import atomic_path, atomic_write_text
from ...config import ConfigError, require
from ...options import ListeningResultsOptions, validate
from . import stats
from .answers import NO_CHOICE, read_answers
from .html import FIRST_COLUMNS, LAST_COLUMNS
from .key import ANCHOR70, EXPORT_NAME, HIDDEN_REFERENCE, HIDDEN_REFERENCE_STIMULUS, KeyRow, key_path, read_key
from .kinds import AB, ABX, KINDS, MOS, MUSHRA, Kind

CORRECT, INCORRECT = "correct", "incorrect"  # webMUSHRA paired_comparison answers
PLOT_MARGIN = 0.08  # headroom above the scale's top, as a fraction of it

RESULTS_JSON, RESULTS_CSV, RESULTS_MD, RATINGS_CSV, RESULTS_PNG = (
    "results.json",
    "results.csv",
    "results.md",
    "ratings.csv",
    "results.png",
)


def results(cfg: DictConfig) -> int:
    """`audio-vq listening-results`."""
    validate(cfg, ListeningResultsOptions)
    require(cfg, "kind", lambda v: v == "auto" or v in KINDS, "auto | " + " | ".join(KINDS))  # the stage's table
    path = Path(cfg.results).expanduser()
    key = read_key(cfg.key)
    kind = _exported_kind(cfg.key) if cfg.kind == "auto" else KINDS[cfg.kind]
    answers = read_answers(path, kind, key, cfg.listener)
    report = ANALYSES[answers.kind](answers.rows, answers.listener, KeyIndex(key, path), cfg)
    report.update(results=str(path), key=str(key_path(cfg.key)), source=answers.source)
    report["listeners"]["identified_by"] = answers.identified_by
    out = output_folder(cfg)
    write_report(out, report)
    estimates = (
        "; ".join(
            f"{s['system']} {_fmt(s['estimate'])} [{_fmt(s['ci_low'])}, {_fmt(s['ci_high'])}]"
            for s in report["systems"]
        )
        or "no answers left (see the exclusions in results.md)"
    )
    print(
        f"{answers.kind.name}: {report['listeners']['included']} of {report['listeners']['total']} listener(s) kept; "
        f"{estimates}; written to {out}"
    )
    return 0


def output_folder(cfg: DictConfig) -> Path:
    """``out``, or by default ``<results file's folder>/<its name>_analysis``."""
    results = Path(cfg.results).expanduser()
    return Path(cfg.out).expanduser() if cfg.out else results.parent / f"{results.stem}_analysis"


# ---------------------------------------------------------------------------------------------
# Reading


def _exported_kind(key: str) -> Kind | None:
    """The kind the test was exported as (export.json beside its key.csv), or None."""
    path = key_path(key).parent / EXPORT_NAME
    try:
        return KINDS.get(json.loads(path.read_text(encoding="utf-8")).get("kind"))
    except (OSError, ValueError, AttributeError, TypeError):
        return None


class KeyIndex:
    """The key, looked up the way results name stimuli: by (trial, stimulus) for MUSHRA's
    hidden reference, by the stimulus (a unique file stem) otherwise."""

    def __init__(self, rows: list[KeyRow], results_path: Path):
        self.rows = rows
        self.path = results_path
        self.by_stimulus = {r.stimulus: r for r in rows if r.stimulus != HIDDEN_REFERENCE_STIMULUS}
        self.hidden = {r.trial: r for r in rows if r.role == HIDDEN_REFERENCE}
        self.by_trial: dict[str, list[KeyRow]] = defaultdict(list)
        for r in rows:
            self.by_trial[r.trial].append(r)

    def find(self, trial: str, stimulus: str, line: int) -> KeyRow:
        if trial not in self.by_trial:
            raise ConfigError(f"results={self.path}: line {line}: trial {trial!r} is not in the key (wrong key.csv?)")
        row = self.hidden.get(trial) if stimulus == HIDDEN_REFERENCE_STIMULUS else self.by_stimulus.get(stimulus)
        if row is None or row.trial != trial:
            raise ConfigError(
                f"results={self.path}: line {line}: stimulus {stimulus!r} of trial {trial} is not in the key"
            )
        return row


def _line(i: int) -> int:
    return i + 2  # 1-based, after the header


# ---------------------------------------------------------------------------------------------
# Analyses: each returns the report dict


def analyse_mushra(rows: list[dict], listener, key: KeyIndex, cfg: DictConfig) -> dict:
    rated = _ratings(rows, listener, key, "rating_stimulus", "rating_score", MUSHRA.scale)
    excluded = stats.screen_mushra([r for r, _ in rated], HIDDEN_REFERENCE, ANCHOR70) if cfg.screening else {}
    return _score_report(MUSHRA, rated, excluded, cfg.confidence)


def analyse_mos(rows: list[dict], listener, key: KeyIndex, cfg: DictConfig) -> dict:
    rated = _ratings(rows, listener, key, "stimuli", "stimuli_rating", MOS.scale)
    return _score_report(MOS, rated, {}, cfg.confidence)


def _ratings(
    rows: list[dict], listener, key: KeyIndex, stimulus_column: str, score_column: str, scale: tuple[float, float]
) -> list[tuple[stats.Rating, KeyRow]]:
    """Every scored row with the key row of what was scored."""
    out = []
    for i, r in enumerate(rows):
        k = key.find(r["trial_id"], r[stimulus_column], _line(i))
        score = _score(r[score_column], scale, score_column, key.path, _line(i))
        out.append((stats.Rating(listener(r), k.trial, k.role, k.system, score), k))
    return out


def analyse_abx(rows: list[dict], listener, key: KeyIndex, cfg: DictConfig) -> dict:
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])  # system -> correct, decided, no choice
    answers = []
    for i, r in enumerate(rows):
        k = key.find(r["trial_id"], r["choice_non_reference"], _line(i))
        answer = r["choice_answer"].lower()
        if answer not in (CORRECT, INCORRECT, *NO_CHOICE):
            raise ConfigError(
                f"results={key.path}: line {_line(i)}: choice_answer={r['choice_answer']!r}: expected "
                f"correct, incorrect, undecided or unknown"
            )
        c = counts[k.system]
        if answer in NO_CHOICE:
            c[2] += 1
        else:
            c[0] += answer == CORRECT
            c[1] += 1
        answers.append(_answer_row(listener(r), k, answer))
    systems = []
    for system in _ordered(counts):
        correct, n, undecided = counts[system]
        ci = stats.proportion_interval(correct, n, cfg.confidence)
        systems.append(
            _system_row(
                system, ci, correct=correct, no_choice=undecided, p_above_chance=stats.binomial_p(correct, n, "greater")
            )
        )
    listeners = {listener(r) for r in rows}
    return _report(ABX, systems, listeners, {}, answers, cfg.confidence)


def analyse_ab(rows: list[dict], listener, key: KeyIndex, cfg: DictConfig) -> dict:
    wins: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])  # (a, b) -> a wins, decided, no choice
    answers = []
    for i, r in enumerate(rows):
        pair = key.by_trial.get(r["trial_id"])
        if not pair or len(pair) != 2:
            raise ConfigError(
                f"results={key.path}: line {_line(i)}: trial {r['trial_id']!r} is not an AB pair of the "
                f"key (wrong key.csv?)"
            )
        a, b = sorted(pair, key=lambda k: _rank(k.system))
        answer = r["choice_answer"]
        if answer.lower() in NO_CHOICE:
            wins[a.system, b.system][2] += 1
            answers.append(_answer_row(listener(r), a, answer.lower()))
            continue
        chosen = key.find(r["trial_id"], answer, _line(i))
        wins[a.system, b.system][0] += chosen.system == a.system and chosen.file == a.file
        wins[a.system, b.system][1] += 1
        answers.append(_answer_row(listener(r), chosen, "preferred"))
    pairs, per_system = [], defaultdict(lambda: [0, 0])
    for (sa, sb), (a_wins, n, undecided) in sorted(wins.items(), key=lambda kv: (_rank(kv[0][0]), _rank(kv[0][1]))):
        ci = stats.proportion_interval(a_wins, n, cfg.confidence)
        pairs.append(
            {
                "system_a": sa,
                "system_b": sb,
                "n": n,
                "a_preferred": a_wins,
                "no_choice": undecided,
                "proportion_a": _num(ci.estimate),
                "ci_low": _num(ci.low),
                "ci_high": _num(ci.high),
                "p_two_sided": _num(stats.binomial_p(a_wins, n, "two-sided")),
            }
        )
        for system, won in ((sa, a_wins), (sb, n - a_wins)):
            per_system[system][0] += won
            per_system[system][1] += n
    systems = [
        _system_row(s, stats.proportion_interval(w, n, cfg.confidence), preferred=w)
        for s in _ordered(per_system)
        for w, n in [per_system[s]]
    ]
    report = _report(AB, systems, {listener(r) for r in rows}, {}, answers, cfg.confidence)
    report["pairs"] = pairs
    return report


ANALYSES = {MUSHRA: analyse_mushra, AB: analyse_ab, ABX: analyse_abx, MOS: analyse_mos}


def _score(text: str, scale: tuple[float, float], column: str, path: Path, line: int) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"results={path}: line {line}: {column}={text!r} is not a number") from None
    if not scale[0] <= value <= scale[1]:
        raise ConfigError(f"results={path}: line {line}: {column}={text} outside {scale[0]:g}..{scale[1]:g}")
    return value


def _score_report(
    kind: Kind, rated: list[tuple[stats.Rating, KeyRow]], excluded: dict[str, str], confidence: float
) -> dict:
    """Mean and confidence interval of the scores per system, excluded listeners left out."""
    by_system: dict[str, list[float]] = defaultdict(list)
    for r, _ in rated:
        if r.listener not in excluded:
            by_system[r.system].append(r.score)
    systems = [_system_row(s, stats.mean_interval(by_system[s], confidence, kind.scale)) for s in _ordered(by_system)]
    answers = [{**_answer_row(r.listener, k, f"{r.score:g}"), "excluded": r.listener in excluded} for r, k in rated]
    return _report(kind, systems, {r.listener for r, _ in rated}, excluded, answers, confidence)


def _answer_row(listener: str, k: KeyRow, answer: str) -> dict:
    return {
        "listener": listener,
        "trial": k.trial,
        "utterance": k.utterance,
        "speaker": k.speaker,
        "role": k.role,
        "system": k.system,
        "target_speaker": k.target_speaker,
        "answer": answer,
    }


def _system_row(system: str, ci: stats.Interval, **extra) -> dict:
    row = {"system": system, "n": ci.n, "estimate": _num(ci.estimate), "ci_low": _num(ci.low), "ci_high": _num(ci.high)}
    row.update({k: _num(v) if isinstance(v, float) else v for k, v in extra.items()})
    return row


def _report(
    kind: Kind, systems: list[dict], listeners: set, excluded: dict, answers: list[dict], confidence: float
) -> dict:
    return {
        "kind": kind.name,
        "measure": kind.measure,
        "confidence": confidence,
        "listeners": {
            "total": len(listeners),
            "included": len(listeners - set(excluded)),
            "excluded": dict(sorted(excluded.items())),
        },
        "systems": systems,
        "answers": answers,
    }


def _rank(system: str) -> tuple[int, str]:
    """Report order: the original, the model's systems, other systems, the anchors."""
    if system in FIRST_COLUMNS:
        return FIRST_COLUMNS.index(system), ""
    if system in LAST_COLUMNS:
        return len(FIRST_COLUMNS) + 1 + LAST_COLUMNS.index(system), ""
    return len(FIRST_COLUMNS), system


def _ordered(systems) -> list[str]:
    return sorted(systems, key=_rank)


def _num(x: float):
    """A float for JSON: NaN (undefined, e.g. one rating) becomes null."""
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else x


def _fmt(x) -> str:
    return "n/a" if x is None else f"{x:.3g}"


# ---------------------------------------------------------------------------------------------
# Writing


def write_report(out: Path, report: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    answers = report.pop("answers")
    atomic_write_text(out / RESULTS_JSON, json.dumps(report, indent=1) + "\n")
    atomic_write_text(out / RESULTS_CSV, _csv(report["systems"]))
    atomic_write_text(out / RATINGS_CSV, _csv(answers))
    atomic_write_text(out / RESULTS_MD, _markdown(report))
    plot(out / RESULTS_PNG, report)


def _csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    fields = list(dict.fromkeys(k for r in rows for k in r))
    writer = csv.DictWriter(buf, fieldnames=fields or ["system"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def _markdown(report: dict) -> str:
    level = f"{report['confidence']:.0%}"
    lines = [
        f"# Listening test results ({report['kind']})",
        "",
        f"Listeners: {report['listeners']['included']} of {report['listeners']['total']} kept; told apart by "
        f"{report['listeners'].get('identified_by', 'n/a')}.",
        "",
        f"Intervals: {KINDS[report['kind']].interval_method}.",
    ]
    for who, why in report["listeners"]["excluded"].items():
        lines.append(f"- excluded `{who}`: {why}")
    lines += ["", f"| system | n | {report['measure']} | {level} CI |", "|---|---|---|---|"]
    lines += [
        f"| {s['system']} | {s['n']} | {_fmt(s['estimate'])} | [{_fmt(s['ci_low'])}, {_fmt(s['ci_high'])}] |"
        for s in report["systems"]
    ]
    if "pairs" in report:
        lines += ["", f"| A | B | n | A preferred | {level} CI | p (two-sided) |", "|---|---|---|---|---|---|"]
        lines += [
            f"| {p['system_a']} | {p['system_b']} | {p['n']} | {_fmt(p['proportion_a'])} | "
            f"[{_fmt(p['ci_low'])}, {_fmt(p['ci_high'])}] | {_fmt(p['p_two_sided'])} |"
            for p in report["pairs"]
        ]
    return "\n".join(lines) + "\n"


def plot(path: str | os.PathLike, report: dict) -> Path:
    """Bars per system with the confidence interval as error bars (Agg canvas, written atomically)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    kind = KINDS[report["kind"]]
    systems = report["systems"]
    names = [s["system"] for s in systems]
    est = [s["estimate"] if s["estimate"] is not None else math.nan for s in systems]
    low = [e - s["ci_low"] if s["ci_low"] is not None else 0.0 for e, s in zip(est, systems)]
    high = [s["ci_high"] - e if s["ci_high"] is not None else 0.0 for e, s in zip(est, systems)]
    fig = Figure(figsize=(max(4.0, 1.1 * len(names) + 1.5), 3.6))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.bar(range(len(names)), est, yerr=[low, high], capsize=4, color="#4c72b0")
    ax.set_xticks(range(len(names)), names, rotation=20, ha="right")
    ax.set_ylabel(report["measure"])
    what = "proportion" if kind.proportion else "mean"
    ax.set_title(
        f"{report['kind']}: {what} and {report['confidence']:.0%} CI ({report['listeners']['included']} listener(s))"
    )
    if kind.proportion:
        ax.axhline(stats.CHANCE, color="grey", linestyle="--", linewidth=1)  # guessing / no preference
    ax.set_ylim(0, kind.scale[1] * (1 + PLOT_MARGIN))  # room for whiskers past the scale's end
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return Path(path)
