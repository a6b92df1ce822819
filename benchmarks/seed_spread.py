"""Which single-run differences of RESULTS.md's quality tables exceed the run-to-run spread of
one configuration over seeds (the table "The earlier single-run differences against this
spread" in RESULTS.md).

    python benchmarks/seed_spread.py --exp /tmp/q27 [--config baseline] [--seeds 3]
                                     [--also 50hz+noise0.1 baseline]

The spread of a number is its range (max - min) over --config's runs with seeds 0..N-1 (their
report.json and metrics.csv under --exp, as ``quality.py --seeds N`` leaves them) and over the
RESULTS.md rows named by --also (earlier single runs of the same configuration). Rows are read
from every ``| config | ...`` table of RESULTS.md outside the section on seeds (a later table's
row of a name wins). Each pair of PAIRS (a row against the row it varies) prints as a markdown
row: the differences beyond the spread (larger than the range plus the table's rounding), and
those within it.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import quality

RESULTS = Path(__file__).with_name("RESULTS.md")
SEEDS_SECTION = "## The baseline over seeds"  # its rows are the seeds themselves
# The compared numbers: (name, column of quality.COLUMNS, index in its cell, rounding of the table)
COMPARED = [
    ("PNMI", "PNMI / MFCC", 0, 1e-3),
    ("acc", "acc / MFCC", 0, 1e-3),
    ("ABX w", "ABX w / a", 0, 0.1),
    ("ABX a", "ABX w / a", 1, 0.1),
    ("spk<-codes", "spk<-codes", 0, 0.01),
    ("gain", "gain, best", 0, 1e-4),
    ("best", "gain, best", 1, 0.01),
    ("STOI", "STOI", 0, 0.01),
    ("F0 rec", "F0 rec / conv", 0, 0.01),
    ("F0 conv", "F0 rec / conv", 1, 0.01),
    ("loss", "loss@end", 0, 0.01),
]
# (row, the row it varies): the quality table's one-change rows against noise0, and the rest
VARIED_FROM_NOISE0 = (
    "jitter0.5",
    "noise0.02",
    "noise0.05",
    "noise0.1",
    "adversary1",
    "50hz",
    "jitter0.12",
    "dropout0.3",
    "125hz",
    "K64",
    "K512",
    "vector",
    "restart20",
    "residual2",
    "K256",
    "lr4e-4",
    "rf1stack",
    "rf3stacks",
    "batch16",
)
PAIRS = [
    *((row, "noise0") for row in VARIED_FROM_NOISE0),
    ("50hz+noise0.1", "noise0.1"),
    ("noise0.05+adversary0.1", "noise0.05"),
    ("50hz+noise0.1", "baseline"),
    ("rvq4@levels1", "baseline"),
    ("rvq2", "rvq4@levels2"),
    ("hier", "baseline"),
]


def table_rows(text: str) -> dict[str, dict[str, float | None]]:
    """Config name -> compared number (None for n/a), from the markdown tables of RESULTS.md."""
    rows: dict[str, dict[str, float | None]] = {}
    header, in_seeds = None, False
    for line in text.splitlines():
        if line.startswith("## "):
            in_seeds = line.startswith(SEEDS_SECTION)
        if line.startswith("| config |"):
            header = [c.strip() for c in line.strip().strip("|").split("|")]
        elif not line.startswith("|"):
            header = None
        elif header and not in_seeds and not line.startswith("|---"):
            cells = dict(zip(header, (c.strip() for c in line.strip().strip("|").split("|"))))
            rows[cells["config"]] = {name: _number(cells.get(column, ""), i) for name, column, i, _ in COMPARED}
    return rows


def _number(cell: str, i: int) -> float | None:
    parts = [p for p in re.split(r"\s*[/,]\s*", cell) if p]
    try:
        return float(parts[i])
    except (IndexError, ValueError):
        return None


def seed_rows(exp: Path, config: str, seeds: int) -> list[dict[str, float | None]]:
    """The compared numbers of --config's runs with seeds 0..seeds-1, as quality.py computes them."""
    columns = [c[0] for c in quality.COLUMNS]
    runs = []
    for seed in range(seeds):
        name = quality.seeded(config, seed)
        cells = quality.numbers(json.loads((exp / "eval" / name / "report.json").read_text()), exp / name)
        runs.append({n: cells[columns.index(column)][i] for n, column, i, _ in COMPARED})
    return runs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--exp", type=Path, required=True, help="quality.py's --exp of the seeded runs")
    ap.add_argument("--config", default="baseline")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument(
        "--also",
        nargs="*",
        default=["50hz+noise0.1", "baseline"],
        help="RESULTS.md rows that are earlier single runs of --config",
    )
    args = ap.parse_args()
    rows = table_rows(RESULTS.read_text())
    runs = seed_rows(args.exp, args.config, args.seeds) + [rows[name] for name in args.also]
    spread = {}
    for name, *_ in COMPARED:
        values = [r[name] for r in runs if r[name] is not None]
        spread[name] = max(values) - min(values) if len(values) == len(runs) else None
    print("range over " + ", ".join(f"{n} {v:.4g}" for n, v in spread.items() if v is not None))
    print("| difference | beyond the spread | within the spread |\n|---|---|---|")
    for a, b in PAIRS:
        if a not in rows or b not in rows:
            continue
        beyond, within = [], []
        for name, _, _, rounding in COMPARED:
            x, y = rows[a][name], rows[b][name]
            if spread[name] is None or x is None or y is None:
                continue
            d = x - y
            (beyond if abs(d) > spread[name] + rounding else within).append(f"{name} {d:+.3g}")
        print(f"| {a} vs {b} | {', '.join(beyond) or '-'} | {', '.join(within)} |")


if __name__ == "__main__":
    main()
