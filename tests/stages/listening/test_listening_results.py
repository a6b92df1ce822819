"""listening-results on hand-written webMUSHRA result files: known means, post-screening, errors."""

import json
import math
import re

import pytest

from audio_vq.config import ConfigError, compose
from audio_vq.stages.listening import results
from audio_vq.stages.listening.key import KeyRow, write_key

INFERENCE = "audio_vq.configs.inference"
T_975_DF3 = 3.1824463052837078  # Student's t quantile for a 95% interval with 4 values

# Two MUSHRA trials: reference, hidden reference, both anchors, the model and a baseline.
ROLES = [
    ("ref", "reference", "reference"),
    ("hid", "hidden_reference", "reference"),
    ("a35", "anchor35", "anchor35"),
    ("a70", "anchor70", "anchor70"),
    ("rec", "condition", "reconstruction"),
    ("base", "condition", "baseline"),
]


def mushra_key(folder):
    rows = []
    for t in ("t1", "t2"):
        for tag, role, system in ROLES:
            stem = f"{t}_{tag}"
            rows.append(
                KeyRow(
                    f"stimuli/{stem}.wav",
                    t,
                    "reference" if role == "hidden_reference" else stem,
                    role,
                    system,
                    f"utt_{t}",
                    "spk00",
                    "spk00" if system == "reconstruction" else "",
                )
            )
    write_key(folder, rows)
    return folder / "key.csv"


# listener -> trial -> (hidden, anchor35, anchor70, reconstruction, baseline)
SCORES = {
    "A": {"t1": (100, 20, 50, 60, 40), "t2": (95, 10, 40, 70, 30)},
    "B": {"t1": (90, 30, 60, 80, 50), "t2": (100, 20, 50, 50, 40)},  # 90 is not below 90: kept
    "C": {"t1": (80, 0, 0, 0, 100), "t2": (95, 0, 0, 0, 100)},  # hidden ref < 90 in 1 of 2 trials: out
    "D": {"t1": (100, 0, 20, 0, 100), "t2": (100, 0, 95, 0, 100)},  # mid anchor > 90 in 1 of 2 trials: out
}


def mushra_csv(path, scores=SCORES, stimulus_override=None):
    lines = ["session_test_id,email,age,session_uuid,trial_id,rating_stimulus,rating_score,rating_time,rating_comment"]
    for who, trials in scores.items():
        for t, values in trials.items():
            names = ["reference", f"{t}_a35", f"{t}_a70", f"{t}_rec", f"{t}_base"]
            for name, score in zip(names, values):
                name = stimulus_override or name
                lines.append(f"mytest,{who.lower()}@x.org,30,uuid-{who},{t},{name},{score},1234,")
    path.write_text("\n".join(lines) + "\n")
    return path


def run(tmp_path, csv_path, key, *overrides):
    out = tmp_path / "analysis"
    results(
        compose("listening_results", [f"results={csv_path}", f"key={key}", f"out={out}", *overrides], package=INFERENCE)
    )
    return json.loads((out / "results.json").read_text()), out


def by_system(report):
    return {s["system"]: s for s in report["systems"]}


def test_mushra_screening_excludes_failing_listeners_and_means_are_known(tmp_path):
    report, out = run(tmp_path, mushra_csv(tmp_path / "mushra.csv"), mushra_key(tmp_path))
    assert report["kind"] == "mushra"
    assert report["listeners"]["total"] == 4 and report["listeners"]["included"] == 2
    excluded = report["listeners"]["excluded"]
    assert set(excluded) == {"uuid-C", "uuid-D"}
    assert "hidden reference" in excluded["uuid-C"] and "mid-range anchor" in excluded["uuid-D"]
    s = by_system(report)
    # means over listeners A and B, 2 trials each (hand-computed)
    assert s["reconstruction"]["estimate"] == pytest.approx(65.0)
    assert s["baseline"]["estimate"] == pytest.approx(40.0)
    assert s["reference"]["estimate"] == pytest.approx(96.25)  # the hidden reference
    assert s["anchor70"]["estimate"] == pytest.approx(50.0) and s["anchor35"]["estimate"] == pytest.approx(20.0)
    assert s["reconstruction"]["n"] == 4
    half = T_975_DF3 * math.sqrt(500 / 3) / 2  # sd of 60, 70, 80, 50 is sqrt(500/3)
    assert s["reconstruction"]["ci_low"] == pytest.approx(65 - half)
    assert s["reconstruction"]["ci_high"] == pytest.approx(65 + half)
    assert [x["system"] for x in report["systems"]] == [
        "reference",
        "reconstruction",
        "baseline",
        "anchor70",
        "anchor35",
    ]
    for name in ("results.csv", "results.md", "ratings.csv", "results.png"):
        assert (out / name).stat().st_size > 0
    assert (out / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "utt_t1" in (out / "ratings.csv").read_text()  # de-anonymised: what each answer was about


def test_screening_can_be_switched_off(tmp_path):
    report, _ = run(tmp_path, mushra_csv(tmp_path / "mushra.csv"), mushra_key(tmp_path), "screening=false")
    assert report["listeners"]["included"] == 4
    assert by_system(report)["reconstruction"]["estimate"] == pytest.approx((65 * 4 + 0 * 4) / 8)


def test_mos_means_from_a_webmushra_lss_file(tmp_path):
    write_key(
        tmp_path,
        [
            KeyRow("stimuli/t1_a.wav", "t1", "t1_a", "condition", "reference", "u1", "s"),
            KeyRow("stimuli/t1_b.wav", "t1", "t1_b", "condition", "reconstruction", "u1", "s", "s"),
            KeyRow("stimuli/t2_c.wav", "t2", "t2_c", "condition", "reconstruction", "u2", "s", "s"),
        ],
    )
    csv_path = tmp_path / "lss.csv"  # webMUSHRA pads the rating with spaces
    csv_path.write_text(
        "session_test_id,name,trial_id,stimuli_rating,stimuli,rating_time\n"
        "x,ann,t1, 5 ,t1_a,10\nx,ann,t1, 3 ,t1_b,10\nx,ann,t2, 2 ,t2_c,10\n"
        "x,bob,t1, 4 ,t1_a,10\nx,bob,t1, 4 ,t1_b,10\nx,bob,t2, 1 ,t2_c,10\n"
    )
    report, _ = run(tmp_path, csv_path, tmp_path / "key.csv")
    s = by_system(report)
    assert report["kind"] == "mos" and report["listeners"]["total"] == 2
    assert s["reference"]["estimate"] == pytest.approx(4.5)
    assert s["reconstruction"]["estimate"] == pytest.approx(2.5) and s["reconstruction"]["n"] == 4
    # two ratings, 5 and 4: the t-interval (4.5 +- 6.35) is clipped to the 1-5 scale, and said so
    assert (s["reference"]["ci_low"], s["reference"]["ci_high"]) == (1.0, 5.0)
    assert s["reconstruction"]["ci_low"] == 1.0 and s["reconstruction"]["ci_high"] == pytest.approx(4.554, abs=1e-3)
    assert "clipped to the 1-5 scale" in (tmp_path / "analysis" / "results.md").read_text()


def test_abx_proportion_correct_with_exact_binomial_interval(tmp_path):
    write_key(
        tmp_path,
        [
            KeyRow("stimuli/t1_r.wav", "t1", "t1_r", "reference", "reference", "u1", "s"),
            KeyRow("stimuli/t1_m.wav", "t1", "t1_m", "condition", "reconstruction", "u1", "s", "s"),
        ],
    )
    answers = ["correct"] * 4 + ["incorrect", "undecided"]
    csv_path = tmp_path / "paired_comparison.csv"
    csv_path.write_text(
        "session_test_id,name,trial_id,choice_reference,choice_non_reference,choice_answer,"
        "choice_time,choice_comment\n" + "".join(f"x,l{i},t1,reference,t1_m,{a},100,\n" for i, a in enumerate(answers))
    )
    report, _ = run(tmp_path, csv_path, tmp_path / "key.csv")
    s = by_system(report)["reconstruction"]
    assert report["kind"] == "abx" and s["n"] == 5 and s["correct"] == 4 and s["no_choice"] == 1
    assert s["estimate"] == pytest.approx(0.8)
    assert s["ci_low"] == pytest.approx(0.2835820638819105) and s["ci_high"] == pytest.approx(0.9949492366205319)
    assert s["p_above_chance"] == pytest.approx(0.1875)


def test_ab_preferences_per_pair(tmp_path):
    rows = []
    for t in ("t1", "t2"):  # two pairs of the same two systems, in either order
        first, second = ("rec", "base") if t == "t1" else ("base", "rec")
        for tag in (first, second):
            system = "reconstruction" if tag == "rec" else "baseline"
            rows.append(KeyRow(f"stimuli/{t}_{tag}.wav", t, f"{t}_{tag}", "condition", system, "u1", "s"))
    write_key(tmp_path, rows)
    csv_path = tmp_path / "ab.csv"
    csv_path.write_text(
        "listener,trial_id,choice_answer\na,t1,t1_rec\na,t2,t2_rec\nb,t1,t1_base\nb,t2,t2_rec\nc,t1,undecided\n"
    )
    report, out = run(tmp_path, csv_path, tmp_path / "key.csv", "kind=ab", "listener=listener")
    (pair,) = report["pairs"]
    assert (pair["system_a"], pair["system_b"]) == ("reconstruction", "baseline")
    assert pair["n"] == 4 and pair["a_preferred"] == 3 and pair["no_choice"] == 1
    assert pair["proportion_a"] == pytest.approx(0.75)
    assert by_system(report)["baseline"]["estimate"] == pytest.approx(0.25)
    assert report["listeners"]["total"] == 3


def test_errors_name_the_problem(tmp_path):
    key = mushra_key(tmp_path)
    bad = mushra_csv(tmp_path / "bad.csv", stimulus_override="t9_nope")
    with pytest.raises(ConfigError, match="stimulus 't9_nope' of trial t1 is not in the key"):
        run(tmp_path, bad, key)
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n")
    with pytest.raises(ConfigError, match="not a webMUSHRA result file"):
        run(tmp_path, other, key)
    with pytest.raises(ConfigError, match=r"missing column\(s\) rating_stimulus, rating_score for kind=mushra"):
        run(tmp_path, _write(tmp_path / "m.csv", "trial_id,x\nt1,1\n"), key, "kind=mushra")
    with pytest.raises(ConfigError, match="kind="):
        run(tmp_path, bad, key, "kind=nope")
    with pytest.raises(ConfigError, match="key=.*no such file"):
        run(tmp_path, bad, tmp_path / "missing.csv")


def _write(path, text):
    path.write_text(text)
    return path


def test_an_empty_session_uuid_column_does_not_merge_listeners(tmp_path):
    """webMUSHRA 1.4.3's client with master's write.php: the session_uuid column is there but empty."""
    key = mushra_key(tmp_path)
    path = mushra_csv(tmp_path / "mushra.csv")
    path.write_text(re.sub(r",uuid-\w,", ",,", path.read_text()))
    report, out = run(tmp_path, path, key)
    assert report["listeners"]["total"] == len(SCORES)  # told apart by their participant answers
    assert report["listeners"]["identified_by"] == "columns email, age"
