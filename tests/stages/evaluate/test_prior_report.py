"""evaluate-prior on a prior trained on patterned units: it beats the unigram, prefers real to
reversed order, and its report holds every section."""

import json

import numpy as np

from audio_vq.config import compose, compose_run
from audio_vq.stages import train_prior
from audio_vq.stages.evaluate.prior_report import _auto_bleu, _kl, _ngrams, evaluate_prior
from audio_vq.units.formats import Record, UnitsMeta, write_units

INFERENCE = "audio_vq.configs.inference"


def test_a_trained_prior_beats_the_unigram_and_prefers_real_order(tmp_path):
    rng = np.random.default_rng(0)
    cycle = np.array([0, 1, 2, 3, 4, 5])
    records = [
        Record(f"u{i:02d}", np.repeat(np.roll(cycle, int(rng.integers(6))), 2)[: int(rng.integers(20, 30))])
        for i in range(40)
    ]  # rising cycles of 2-frame runs: order matters, reversal never occurs
    units = tmp_path / "u.txt"
    write_units(units, records, UnitsMeta("gslm", 50.0, 6, 16000, None, False))
    cfg, folder = compose_run(
        "train_prior",
        [
            f"units={units}",
            f"hydra.run.dir={tmp_path / 'run'}",
            "prior.dim=32",
            "prior.layers=2",
            "prior.heads=2",
            "prior.max_len=32",
            "train.batch_size=8",
            "train.max_steps=120",
            "train.lr=3e-3",
            "train.warmup_steps=10",
            "train.valid_every=1000",
            "train.checkpoint_every=1000",
            "train.threads=1",
            "prior.dropout=0.0",
        ],
    )
    run = train_prior.run(cfg, folder)
    evaluate_prior(
        compose(
            "evaluate_prior", [f"prior={run / 'prior'}", f"out={tmp_path / 'ev'}", "num_samples=4"], package=INFERENCE
        )
    )
    report = json.loads((tmp_path / "ev" / "report.json").read_text())
    bits = {k: v["bits_per_unit"] for k, v in report["bits"].items()}
    assert bits["prior"] < 0.5 * bits["1-gram (Witten-Bell)"]
    assert report["bits"]["prior"]["bits_per_second"] == bits["prior"] * 50.0
    assert report["held_out"] + report["valid"] + report["train"] == 40 and report["held_out"] >= 1 <= report["valid"]
    assert report["preferences"]["real_over_reversed"] == 1.0
    assert set(report["samples"]) >= {"unigram_kl_bits", "bigram_kl_bits", "mean_run_length", "auto_bleu_2"}
    assert "Prior below the best n-gram" in (tmp_path / "ev" / "report.md").read_text()


def test_sample_statistics_on_hand_made_sequences():
    assert _auto_bleu([np.array([1, 2, 1, 2])]) == 2 / 3  # bigrams (1,2) (2,1) (1,2): (1,2) occurs twice
    assert _auto_bleu([np.array([1, 2, 3, 4])]) == 0.0
    p = _ngrams([np.array([0, 0, 1])], 1)
    assert _kl(p, p, 2) == 0.0 and _kl(p, _ngrams([np.array([1, 1, 1])], 1), 2) > 0
