"""export-listening-test on a tiny trained model: every kind's folder against its key, loudness,
clipping, webMUSHRA's constraints, other systems, short and broken inputs, the HTML page in
headless Chromium, config errors."""

import csv
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pyloudnorm
import pytest
import soundfile as sf
import yaml

from audio_vq import audio
from audio_vq.config import ConfigError, compose
from audio_vq.manifest import Utterance, read_manifest, write_manifest
from audio_vq.stages.listening import export, results
from audio_vq.stages.listening.key import read_key
from audio_vq.stages.listening.webmushra import MUSHRA_MAX_STIMULI, check_config, group_trials
from audio_vq.stages.listening.webmushra import _walk_pages as walk_pages

INFERENCE = "audio_vq.configs.inference"
KINDS = ("mushra", "ab", "abx", "mos")
EXCERPT = 0.5  # seconds: short stimuli keep generation fast
GATE_SECONDS = 0.4  # BS.1770 gating block: shorter files cannot be measured directly
LU_TOLERANCE = 0.5
TARGET_LUFS = -23.0
CEILING_DB = -1.0
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def compose_export(trained, out, *overrides):
    return compose(
        "export_listening_test",
        [
            f"model={trained / 'run' / 'model'}",
            f"data={trained / 'data'}",
            f"out={out}",
            f"max_seconds={EXCERPT}",
            "chunk_seconds=0.5",
            *overrides,
        ],
        package=INFERENCE,
    )


def baseline_folder(trained, folder):
    """Another system's outputs: each utterance's first 0.3 s at 22.05 kHz in stereo (resampled,
    mixed down and zero-padded by the export)."""
    folder.mkdir()
    for u in read_manifest(trained / "data"):
        x = sf.read(u.path, dtype="float32")[0][: int(0.3 * 16000)]
        y = np.interp(np.arange(0, len(x), 16000 / 22050), np.arange(len(x)), x).astype(np.float32)
        sf.write(folder / f"{u.id}.wav", np.stack([y, 0.5 * y], axis=1), 22050)
    return folder


@pytest.fixture(scope="module")
def exports(tiny_trained, tmp_path_factory):
    """One exported test per kind: 2 utterances, 1 conversion each, a baseline system."""
    root = tmp_path_factory.mktemp("listening")
    base = baseline_folder(tiny_trained, root / "baseline")
    outs = {}
    for kind in KINDS:
        outs[kind] = root / kind
        export(
            compose_export(
                tiny_trained, outs[kind], f"kind={kind}", "num_utterances=2", "targets=1", f"+systems.baseline={base}"
            )
        )
    return outs


def key_rows(folder):
    return list(csv.DictReader(open(folder / "private" / "key.csv")))


def expected_roles(kind, n_conditions):
    fixed = {"mushra": ["reference", "hidden_reference", "anchor35", "anchor70"], "abx": ["reference"]}
    return sorted(fixed.get(kind, []) + ["condition"] * n_conditions)


@pytest.mark.parametrize("kind", KINDS)
def test_folder_is_complete_and_matches_its_key(exports, kind):
    out = exports[kind]
    rows = key_rows(out)
    files = {p.relative_to(out / "serve").as_posix() for p in (out / "serve" / "stimuli").iterdir()}
    assert files == {r["file"] for r in rows} and len(files) == len(rows)  # every file keyed, once
    trials = {}
    for r in rows:
        trials.setdefault(r["trial"], []).append(r)
    utterances = {r["utterance"] for r in rows}
    assert len(utterances) == 2
    # systems: the original, the model's reconstruction, one conversion, the baseline
    if kind == "ab":  # every pair of the 4 stimuli, per utterance, 2 files each
        assert len(trials) == 2 * 6 and all(len(t) == 2 for t in trials.values())
        pairs = {(t[0]["utterance"], frozenset(r["system"] for r in t)) for t in trials.values()}
        assert len(pairs) == 12
    else:
        assert len(trials) == 2
        n_conditions = 4 if kind == "mos" else 3
        for t in trials.values():
            assert sorted(r["role"] for r in t) == expected_roles(kind, n_conditions)
    systems = {r["system"] for r in rows}
    assert {"reconstruction", "conversion", "baseline"} <= systems
    for r in rows:
        assert r["file"].startswith(f"stimuli/{r['trial']}_") and r["utterance"] not in r["file"]  # anonymous
        if r["system"] == "reconstruction":
            assert r["target_speaker"] == r["speaker"]
        if r["system"] == "conversion":
            assert r["target_speaker"] not in ("", r["speaker"])
    assert read_key(out)  # the reader accepts what the writer wrote


@pytest.mark.parametrize("kind", KINDS)
def test_trials_share_rate_length_channels_and_are_loudness_normalised(exports, kind):
    out = exports[kind]
    gains = json.loads((out / "private" / "export.json").read_text())["trial_gain_db"]  # trials turned down not to clip
    rows = key_rows(out)
    meter = pyloudnorm.Meter(16000)
    for trial in {r["trial"] for r in rows}:
        files = [r for r in rows if r["trial"] == trial]
        infos = [sf.info(out / "serve" / r["file"]) for r in files]
        assert len({(i.samplerate, i.frames, i.channels) for i in infos}) == 1
        assert infos[0].channels == 1 and infos[0].subtype == "PCM_16" and infos[0].samplerate == 16000
        peaks = []
        for r in files:
            x, _ = sf.read(out / "serve" / r["file"])
            peaks.append(np.abs(x).max())
            if len(x) >= GATE_SECONDS * 16000:
                assert abs(meter.integrated_loudness(x) - (TARGET_LUFS + gains.get(trial, 0.0))) <= LU_TOLERANCE, r
        top_db = 20 * np.log10(max(peaks))
        assert top_db <= CEILING_DB + 0.01  # nothing clips
        if trial in gains:  # turned down exactly as far as needed: the loudest file sits at the ceiling
            assert gains[trial] < 0 and abs(top_db - CEILING_DB) < 0.01


@pytest.mark.parametrize("kind", KINDS)
def test_webmushra_yaml_parses_and_meets_the_constraints(exports, kind):
    out = exports[kind]
    config = yaml.safe_load((out / "serve" / "webmushra.yaml").read_text())
    prefix = f"configs/resources/audio/{out.name}"
    assert check_config(config, out / "serve", prefix) == []
    assert config["pages"][-1]["type"] == "finish" and config["pages"][1][0] == "random"
    pages = config["pages"][1][1:]
    page_type = {
        "mushra": "mushra",
        "ab": "likert_multi_stimulus",
        "abx": "paired_comparison",
        "mos": "likert_single_stimulus",
    }[kind]
    assert {p["type"] for p in pages} == {page_type}
    webmushra_types = {
        "generic",
        "volume",
        "mushra",
        "spatial",
        "paired_comparison",
        "bs1116",  # its startup.js
        "likert_single_stimulus",
        "likert_multi_stimulus",
        "finish",
    }
    assert {p["type"] for p in walk_pages(config["pages"])} <= webmushra_types
    if kind == "mos":  # a page per stimulus, all in one random group: an utterance's stimuli are not consecutive
        assert all(len(p["stimuli"]) == 1 for p in pages) and len(pages) == len(key_rows(out))
    finish = config["pages"][-1]
    assert finish["questionnaire"] == [
        {"type": "text", "name": "listener", "label": finish["questionnaire"][0]["label"]}
    ]
    rows = key_rows(out)
    listed = set()
    for p in pages:
        for path in [p.get("reference"), *p["stimuli"].values()]:
            if path:
                assert path.startswith(prefix + "/stimuli/")
                listed.add(path[len(prefix) + 1 :])
        assert all(k.startswith(p["id"] + "_") for k in p["stimuli"])  # keys are the anonymous names
        if kind == "mushra":
            assert p["strict"] is True and len(p["stimuli"]) + 1 <= MUSHRA_MAX_STIMULI
            assert not p["createAnchor35"] and not p["createAnchor70"]  # ours are stimuli
        if kind == "mos":
            assert [(c["value"], c["label"]) for c in p["response"]] == [
                (1, "Bad"),
                (2, "Poor"),
                (3, "Fair"),
                (4, "Good"),
                (5, "Excellent"),
            ]
    # every file but the hidden references (the tools add their own) is in the YAML
    assert listed == {r["file"] for r in rows if r["role"] != "hidden_reference"}
    if kind == "mos":
        return  # one file per page: no page can mix lengths
    # the checker is able to fail: a trial with one file of another length
    broken = out.parent / f"{kind}_broken"
    shutil.copytree(out / "serve" / "stimuli", broken / "stimuli")
    victim = broken / rows[-1]["file"]
    x, rate = sf.read(victim)
    sf.write(victim, x[:-7], rate, subtype="PCM_16")
    assert any("different lengths" in p for p in check_config(config, broken, prefix))


def test_beaqlejs_config_matches_the_key(exports):
    for kind in ("mushra", "ab", "abx"):
        text = (exports[kind] / "serve" / "beaqlejs_config.js").read_text()
        config = json.loads(text[text.index("{") : text.rindex("}") + 1])
        paths = {p for t in config["Testsets"] for p in t["Files"].values()}
        rows = key_rows(exports[kind])
        assert paths == {f"audio/{kind}/{r['file']}" for r in rows if r["role"] != "hidden_reference"}
    assert not (exports["mos"] / "serve" / "beaqlejs_config.js").exists()  # BeaqleJS has no single-stimulus rating


def blinded_order(out):
    """Per trial in the order written (t01, t02, ...): its utterance's speaker and its rated
    stimuli as (system, target speaker) in the order of key.csv, after checking that
    webmushra.yaml and beaqlejs_config.js present the trials and stimuli in that same order."""
    trials = {}
    for r in key_rows(out):
        trials.setdefault(r["trial"], []).append(r)
    pages = yaml.safe_load((out / "serve" / "webmushra.yaml").read_text())["pages"][1][1:]
    sets = beaqle_config(out)["Testsets"]
    assert list(trials) == sorted(trials) == [p["id"] for p in pages] == [s["Name"] for s in sets]
    order = []
    for rows, page, testset in zip(trials.values(), pages, sets):
        rated = [r for r in rows if r["role"] not in ("reference", "hidden_reference")]
        assert list(page["stimuli"]) == [r["stimulus"] for r in rated]
        assert list(testset["Files"]) == ["Reference", *(r["stimulus"] for r in rated)]
        order.append((rows[0]["speaker"], [(r["system"], r["target_speaker"]) for r in rated]))
    return order


def test_trials_and_their_stimuli_are_shuffled_with_the_seed(tiny_trained, tmp_path):
    """Listeners must not meet the trials in the order they were planned (speaker by speaker),
    nor a trial's systems in the order they were built (anchors, reconstruction, conversions): both are
    seeded shuffles, the same for the same seed and different for another."""
    # catches: write_stimuli keeping the trials in the order they were built (trial shuffle
    # removed), or each trial's stimuli in the order they were built (stimulus shuffle removed)
    speakers = sorted(json.loads((tiny_trained / "data" / "speakers.json").read_text()))
    orders = {}
    for name, seed in (("first", 0), ("again", 0), ("other", 1)):
        # one utterance per speaker, taken in speaker order (round robin), converted to every other speaker
        export(
            compose_export(
                tiny_trained,
                tmp_path / name,
                "kind=mushra",
                f"num_utterances={len(speakers)}",
                "targets=all",
                f"seed={seed}",
            )
        )
        orders[name] = blinded_order(tmp_path / name)
    assert orders["first"] == orders["again"]

    def built(speaker):  # a trial's rated stimuli as trials.py makes them
        return [
            ("anchor35", ""),
            ("anchor70", ""),
            ("reconstruction", speaker),
            *(("conversion", t) for t in speakers if t != speaker),
        ]

    for name in ("first", "other"):
        assert sorted(s for s, _ in orders[name]) == speakers  # every trial, every stimulus, once
        assert all(sorted(o) == sorted(built(s)) for s, o in orders[name])
        assert [s for s, _ in orders[name]] != speakers  # the trials are not in the order they were built
        assert any(o != built(s) for s, o in orders[name])  # nor are the stimuli of every trial
    assert [s for s, _ in orders["first"]] != [s for s, _ in orders["other"]]  # another seed, another order
    first, other = dict(orders["first"]), dict(orders["other"])
    assert any(first[s] != other[s] for s in speakers)


def test_ab_pairs_are_presented_either_way_round(exports):
    # catches: the stimulus shuffle removed, which would put every pair's earlier-built system
    # first (as A), so a listener preferring A would favour the reference and the model's outputs
    built = ["reference", "reconstruction", "conversion", "baseline"]  # the order trials.py builds
    system = {r["stimulus"]: r["system"] for r in key_rows(exports["ab"])}
    pairs = [
        (system[Path(s["Files"]["A"]).stem], system[Path(s["Files"]["B"]).stem])
        for s in beaqle_config(exports["ab"])["Testsets"]
    ]
    assert len(pairs) == 12
    ahead = [built.index(a) < built.index(b) for a, b in pairs]
    assert any(ahead) and not all(ahead)
    pages = yaml.safe_load((exports["ab"] / "serve" / "webmushra.yaml").read_text())["pages"][1][1:]
    assert [tuple(system[k] for k in p["stimuli"]) for p in pages] == pairs  # the same order in webMUSHRA


def test_rerun_resumes_and_gives_the_same_test(exports, tiny_trained):
    out = exports["mushra"]
    before = (out / "private" / "key.csv").read_text()
    generated = sorted((out / "private" / "generated").rglob("*.wav"))
    stamps = [p.stat().st_mtime_ns for p in generated]
    base = out.parent / "baseline"
    export(
        compose_export(tiny_trained, out, "kind=mushra", "num_utterances=2", "targets=1", f"+systems.baseline={base}")
    )
    assert (out / "private" / "key.csv").read_text() == before
    assert [p.stat().st_mtime_ns for p in generated] == stamps  # generated audio reused, not redone


def audio_states(page: Path, tmp_path: Path) -> list[tuple[str, int, int]]:
    """Open a copy of ``page`` in headless Chromium with a probe that waits for every audio
    element to load (or fail) and writes src, readyState and error code into the DOM."""
    probe = """<script>
function report() {
  var lines = Array.from(document.querySelectorAll('audio')).map(function (a) {
    return a.getAttribute('src') + ' ' + a.readyState + ' ' + (a.error ? a.error.code : 0); });
  var pre = document.createElement('pre'); pre.id = 'probe'; pre.textContent = lines.join('\\n');
  document.body.appendChild(pre);
}
function poll(n) {
  var all = Array.from(document.querySelectorAll('audio'));
  if (n <= 0 || all.every(function (a) { return a.readyState >= 2 || a.error; })) { report(); return; }
  setTimeout(function () { poll(n - 1); }, 100);
}
window.addEventListener('load', function () { poll(100); });
</script>"""
    copy = page.with_name("probe_index.html")
    copy.write_text(page.read_text().replace("</body>", probe + "</body>"))
    r = subprocess.run(
        [
            str(CHROMIUM),
            *CHROMIUM_FLAGS,
            f"--user-data-dir={tmp_path / 'chromium'}",
            "--virtual-time-budget=20000",
            "--dump-dom",
            copy.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    dom = r.stdout
    assert '<pre id="probe">' in dom, r.stderr[-2000:]
    text = dom.split('<pre id="probe">', 1)[1].split("</pre>", 1)[0]
    return [(s, int(state), int(err)) for s, state, err in (line.rsplit(" ", 2) for line in text.splitlines())]


@pytest.mark.skipif(
    not CHROMIUM.exists(), reason="Debian's chromium is not installed (/usr/bin/chromium): apt-get install chromium"
)
def test_html_page_loads_every_audio_element_in_chromium(exports, tmp_path):
    folder = tmp_path / "mushra"
    shutil.copytree(exports["mushra"], folder, ignore=shutil.ignore_patterns("generated"))
    rows = key_rows(folder)
    page = folder / "private" / "index.html"
    html = page.read_text()
    assert "not blinded" in html or "names the systems" in html
    states = audio_states(page, tmp_path)
    shown = {"../serve/" + r["file"] for r in rows if r["role"] != "hidden_reference"}
    assert {s for s, _, _ in states} == shown and len(states) == len(shown)
    assert all(state >= 2 and err == 0 for _, state, err in states), states
    # the probe is able to fail: a missing file shows up as an error
    (folder / "serve" / rows[0]["file"]).unlink()
    states = dict((s, (state, err)) for s, state, err in audio_states(page, tmp_path))
    missing = "../serve/" + rows[0]["file"]
    assert states[missing][1] != 0 and states[missing][0] < 2


def test_short_empty_and_missing_inputs_are_handled(tiny_trained, tmp_path):
    utts = read_manifest(tiny_trained / "data")
    data, base = tmp_path / "data", tmp_path / "baseline"
    base.mkdir()
    (data / "audio").mkdir(parents=True)
    lengths = {"long": 8000, "short": 4000, "tiny": 800}  # 0.5 s, 0.25 s (< one gating block), 0.05 s
    manifest = []
    for (name, n), u in zip(lengths.items(), utts):
        x = sf.read(u.path, dtype="float32")[0][:n]
        sf.write(data / "audio" / f"{name}.wav", x, 16000)
        manifest.append(Utterance(name, str(data / "audio" / f"{name}.wav"), u.speaker, n, 16000, "test"))
    (data / "audio" / "broken.wav").write_bytes(b"RIFF not really a wav")
    manifest.append(Utterance("broken", str(data / "audio" / "broken.wav"), utts[3].speaker, 100, 16000, "test"))
    write_manifest(data, manifest)
    sf.write(base / "long.wav", sf.read(data / "audio" / "long.wav")[0][:10], 16000)  # 10 samples: padded
    sf.write(base / "tiny.wav", np.zeros((0,), np.float32), 16000)  # an empty file
    # (no baseline file for "short")
    out = tmp_path / "out"
    export(
        compose_export(
            tiny_trained, out, "kind=mushra", "num_utterances=4", f"data={data}", f"systems={{baseline:{base}}}"
        )
    )
    rows = key_rows(out)
    assert {r["utterance"] for r in rows} == {"long", "short"}
    assert {r["system"] for r in rows if r["utterance"] == "long"} >= {"baseline", "reconstruction"}
    assert "baseline" not in {r["system"] for r in rows if r["utterance"] == "short"}
    skipped = (out / "private" / "skipped.tsv").read_text()
    assert "broken.wav" in skipped and "too short" in skipped and "no file for utterance short" in skipped
    summary = json.loads((out / "private" / "export.json").read_text())
    assert any("padded with" in n for n in summary["notes"])
    # the 10-sample baseline, padded, is below the -70 LUFS gate: reported, left at its level
    quiet = {n.split(":")[0] for n in summary["notes"] if "not measurable" in n}
    assert quiet == {r["file"] for r in rows if r["system"] == "baseline"}
    meter = pyloudnorm.Meter(16000)
    for r in rows:
        x, _ = sf.read(out / "serve" / r["file"])
        assert 20 * np.log10(np.abs(x).max()) <= CEILING_DB + 0.01
        gain = summary["trial_gain_db"].get(r["trial"], 0.0)  # a trial turned down so that nothing clips
        if r["file"] in quiet:
            continue
        if len(x) >= GATE_SECONDS * 16000:
            assert abs(meter.integrated_loudness(x) - (TARGET_LUFS + gain)) <= LU_TOLERANCE, r
        else:  # shorter than a gating block: measured tiled to one (audio.loudness), normalised the same
            assert r["utterance"] == "short"
            assert abs(audio.loudness(x, 16000) - (TARGET_LUFS + gain)) <= LU_TOLERANCE, r
    assert (
        check_config(
            yaml.safe_load((out / "serve" / "webmushra.yaml").read_text()),
            out / "serve",
            f"configs/resources/audio/{out.name}",
        )
        == []
    )


def test_held_out_speakers_get_conversions_to_known_voices_and_no_reconstruction(tiny_trained, tmp_path):
    utts = read_manifest(tiny_trained / "data")
    known = json.loads((tiny_trained / "data" / "speakers.json").read_text())
    for u in utts:
        u.speaker, u.split = f"held_out_{u.speaker}", "test"  # every speaker unknown to the model
    write_manifest(tmp_path / "data" / "manifest.jsonl", utts, relative=False)
    out = tmp_path / "out"
    export(
        compose_export(tiny_trained, out, "kind=mushra", "num_utterances=2", "targets=2", f"data={tmp_path / 'data'}")
    )
    rows = key_rows(out)
    conditions = [r for r in rows if r["role"] == "condition"]
    assert len({r["utterance"] for r in rows}) == 2 and len(conditions) == 4
    assert {r["system"] for r in conditions} == {"conversion"}
    assert {r["target_speaker"] for r in conditions} <= set(known)
    summary = json.loads((out / "private" / "export.json").read_text())
    assert summary["unseen_speaker_utterances"] == sorted({r["utterance"] for r in rows})
    assert "no reconstruction" in summary["unseen_speakers_note"]


def test_config_errors_are_one_line_and_name_the_key(tiny_trained, tmp_path):
    cases = [
        (["kind=nope"], "kind='nope'"),
        (["kind=mos", "loudness=loud"], "loudness='loud'"),
        (["kind=mos", "num_utterances=0"], "num_utterances=0"),
        (["kind=mos", f"+systems.base={tmp_path / 'missing'}"], "systems.base="),
        (["kind=mos", f"+systems.reference={tmp_path}"], "systems.reference"),
        (["kind=mos", "targets=[nobody]"], "targets=nobody: unknown speaker"),
        (["kind=mushra", "targets=all"] + [f"+systems.s{i}={tmp_path}" for i in range(7)], "strict=true"),
    ]
    for overrides, message in cases:
        with pytest.raises(ConfigError, match=message.replace("[", r"\[")) as e:
            export(compose_export(tiny_trained, tmp_path / "out", *overrides))
        assert "\n" not in str(e.value)
    assert not (tmp_path / "out" / "serve" / "stimuli").exists()  # refused before writing anything


def test_group_trials_leaves_hidden_references_to_the_tools(exports):
    rows = read_key(exports["mushra"])
    grouped = group_trials(rows)
    assert all(r.role != "hidden_reference" for t in grouped.values() for r in t)
    assert sum(len(t) for t in grouped.values()) == len(rows) - len(grouped)


# Answers a scripted listener gives, by system: MUSHRA / MOS scores, and the ABX and AB choices.
SCRIPTED = {"reference": 100, "anchor70": 60, "anchor35": 20, "reconstruction": 50, "conversion": 40, "baseline": 30}
AB_RATING = {"reference": 5, "reconstruction": 4, "conversion": 3, "baseline": 2}  # ACR ratings on an AB page


def scripted_answers(kind, config, key):
    """A webMUSHRA-format result CSV for ``config``'s pages, as the service would write it."""
    system = {r["stimulus"]: r["system"] for r in key}
    pages = config["pages"][1][1:]
    if kind == "mushra":
        lines = ["session_test_id,email,session_uuid,trial_id,rating_stimulus,rating_score,rating_time,rating_comment"]
        for p in pages:
            for name in ["reference", *p["stimuli"]]:
                score = SCRIPTED["reference" if name == "reference" else system[name]]
                lines.append(f"x,a@b.c,uuid-1,{p['id']},{name},{score},100,")
    elif kind == "mos":
        lines = ["session_test_id,name,trial_id,stimuli_rating,stimuli,rating_time"]
        lines += [f"x,ann,{p['id']}, {SCRIPTED[system[s]] // 20} ,{s},100" for p in pages for s in p["stimuli"]]
    elif kind == "abx":
        lines = ["session_test_id,name,trial_id,choice_reference,choice_non_reference,choice_answer,choice_time"]
        lines += [
            f"x,ann,{p['id']},reference,{s},{'correct' if system[s] == 'conversion' else 'incorrect'},100"
            for p in pages
            for s in p["stimuli"]
        ]
    else:  # ab: lms.csv, each pair's two stimuli rated on one page; the higher scripted score is rated higher
        lines = ["session_test_id,listener,trial_id,stimuli_rating,stimuli,rating_time"]
        lines += [f"x,ann,{p['id']}, {AB_RATING[system[s]]} ,{s},100" for p in pages for s in p["stimuli"]]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("kind", KINDS)
def test_results_of_an_exported_test_come_back_per_system(exports, kind, tmp_path):
    out = exports[kind]
    config = yaml.safe_load((out / "serve" / "webmushra.yaml").read_text())
    csv_path = tmp_path / f"{kind}.csv"
    csv_path.write_text(scripted_answers(kind, config, key_rows(out)))
    results(
        compose(
            "listening_results",
            [f"results={csv_path}", f"key={out / 'private' / 'key.csv'}", f"out={tmp_path / 'r'}"],
            package=INFERENCE,
        )
    )
    report = json.loads((tmp_path / "r" / "results.json").read_text())
    got = {s["system"]: s["estimate"] for s in report["systems"]}
    assert report["kind"] == kind
    if kind == "mushra":
        assert got == {s: float(v) for s, v in SCRIPTED.items()} and not report["listeners"]["excluded"]
    elif kind == "mos":
        assert got == {s: float(SCRIPTED[s] // 20) for s in ("reference", "reconstruction", "conversion", "baseline")}
    elif kind == "abx":
        assert got == {"reconstruction": 0.0, "conversion": 1.0, "baseline": 0.0}
    else:  # reference beats all 3 others, reconstruction 2, conversion 1, baseline none
        assert got == {"reference": 1.0, "reconstruction": 2 / 3, "conversion": 1 / 3, "baseline": 0.0}


# ------------------------------------------------------------------------------------------
# The real apps: webMUSHRA's parser, a folder safe to serve, results in each app's format


@pytest.mark.parametrize("kind", KINDS)
def test_webmushra_reads_the_yaml_as_pyyaml_does(exports, kind, yamljs, tiny_trained, tmp_path):
    text = (exports[kind] / "serve" / "webmushra.yaml").read_text(encoding="utf-8")
    assert yamljs(text) == yaml.safe_load(text)
    if kind == "mushra":  # other options: strict off, a name with non-ASCII and characters the POST must not carry
        out = tmp_path / "opts"
        export(
            compose_export(
                tiny_trained,
                out,
                "kind=mushra",
                "num_utterances=1",
                "targets=1",
                "strict=false",
                "test_name='Prüfung & Test+1'",
            )
        )
        text = (out / "serve" / "webmushra.yaml").read_text(encoding="utf-8")
        parsed = yamljs(text)
        assert parsed == yaml.safe_load(text) and parsed["testname"] == "Prüfung - Test-1"
        assert all(p["strict"] is False for p in parsed["pages"][1][1:])


@pytest.mark.parametrize("kind", KINDS)
def test_nothing_listeners_can_fetch_names_a_system_speaker_or_utterance(exports, kind):
    out = exports[kind]
    rows = key_rows(out)
    secret = (
        ({r["system"] for r in rows} - {"reference"})
        | {r["speaker"] for r in rows}
        | {r["utterance"] for r in rows}
        | {r["target_speaker"] for r in rows if r["target_speaker"]}
        | {"hidden_reference"}
    )
    assert {"reconstruction", "conversion", "baseline"} <= secret
    served = [p for p in (out / "serve").rglob("*") if p.is_file()]
    assert {p.relative_to(out / "serve").parts[0] for p in served} <= {
        "stimuli",
        "webmushra.yaml",
        "beaqlejs_config.js",
    }
    for p in served:
        name = p.relative_to(out / "serve").as_posix()
        assert not any(s in name for s in secret), name
        if p.suffix != ".wav":
            text = p.read_text(encoding="utf-8")
            assert not [s for s in secret if s in text], (name, [s for s in secret if s in text])
        else:  # no metadata chunk (a title, a comment) carries a name either
            assert not [s for s in secret if s.encode() in p.read_bytes()], name
    assert sorted(p.name for p in (out / "private").iterdir()) >= ["export.json", "generated", "index.html", "key.csv"]


def beaqle_config(out):
    text = (out / "serve" / "beaqlejs_config.js").read_text()
    return json.loads(text[text.index("{") : text.rindex("}") + 1])


def beaqle_download(kind, out, user, swap_every=2):
    """What BeaqleJS's "download results" gives for the scripted listener: a JSON array of set
    results in config order, then the user object; AB sets shown swapped every other time."""
    system = {r["stimulus"]: r["system"] for r in key_rows(out)}
    results_ = []
    for i, s in enumerate(beaqle_config(out)["Testsets"]):
        if kind == "mushra":
            rating = {k: SCRIPTED["reference" if k == "Reference" else system[k]] for k in s["Files"]}
            results_.append({"TestID": s["TestID"], "Runtime": 100, "rating": rating, "filename": s["Files"]})
        elif kind == "abx":
            results_.append(system[s["TestID"]] == "conversion")  # X found for conversions only
        else:
            swapped = i % swap_every == 0
            order = {"A": "B", "B": "A"} if swapped else {"A": "A", "B": "B"}
            better = max(s["Files"], key=lambda k: SCRIPTED[system[Path(s["Files"][k]).stem]])  # its file key
            letter = next(letter for letter, key in order.items() if key == better)  # where it was on screen
            results_.append(
                {
                    "TestID": s["TestID"],
                    "PresentationOrder": f"A={order['A']}, B={order['B']}",
                    "Runtime": 100,
                    "Preference": letter,
                }
            )
    return results_ + [{"UserName": user, "UserEmail": "", "UserComment": "Your comment..."}]


@pytest.mark.parametrize("kind", ["mushra", "abx", "ab"])
def test_beaqlejs_results_come_back_per_system_with_two_listeners_kept_apart(exports, kind, tmp_path):
    out = exports[kind]
    folder = tmp_path / "beaqle_results"
    folder.mkdir()
    for user in ("ann", "bob"):
        (folder / f"20261202-101500_{user}.txt").write_text(json.dumps(beaqle_download(kind, out, user)))
    results(
        compose("listening_results", [f"results={folder}", f"key={out}", f"out={tmp_path / 'r'}"], package=INFERENCE)
    )
    report = json.loads((tmp_path / "r" / "results.json").read_text())
    got = {s["system"]: s["estimate"] for s in report["systems"]}
    assert report["kind"] == kind and report["source"] == "beaqlejs" and report["listeners"]["total"] == 2
    if kind == "mushra":
        assert got == {s: float(v) for s, v in SCRIPTED.items()}
    elif kind == "abx":
        assert got == {"reconstruction": 0.0, "conversion": 1.0, "baseline": 0.0}
    else:  # un-swapped through the presentation order: the same as the scripted preferences
        assert got == {"reference": 1.0, "reconstruction": 2 / 3, "conversion": 1 / 3, "baseline": 0.0}


def test_webmushra_csv_listeners_are_told_apart_or_the_report_says_it_cannot(exports, tmp_path):
    out = exports["abx"]
    config = yaml.safe_load((out / "serve" / "webmushra.yaml").read_text())
    one = scripted_answers("abx", config, key_rows(out)).splitlines()
    two = one + [line.replace(",ann,", ",bob,") for line in one[1:]]
    (tmp_path / "paired_comparison.csv").write_text("\n".join(two).replace("name", "listener", 1) + "\n")
    results(
        compose(
            "listening_results",
            [f"results={tmp_path / 'paired_comparison.csv'}", f"key={out}", f"out={tmp_path / 'r'}"],
            package=INFERENCE,
        )
    )
    report = json.loads((tmp_path / "r" / "results.json").read_text())
    assert report["listeners"]["total"] == 2 and report["listeners"]["identified_by"] == "column listener"
    anonymous = ["trial_id,choice_reference,choice_non_reference,choice_answer"] + [
        ",".join(line.split(",")[2:6]) for line in two[1:]
    ]
    (tmp_path / "anon.csv").write_text("\n".join(anonymous) + "\n")
    results(
        compose(
            "listening_results",
            [f"results={tmp_path / 'anon.csv'}", f"key={out}", f"out={tmp_path / 'r2'}"],
            package=INFERENCE,
        )
    )
    report = json.loads((tmp_path / "r2" / "results.json").read_text())
    assert report["listeners"]["total"] == 1 and report["listeners"]["identified_by"].startswith("none")
    assert "told apart by none" in (tmp_path / "r2" / "results.md").read_text()
