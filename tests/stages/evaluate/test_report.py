"""`audio-vq evaluate` on a tiny trained model: every section is there and self-consistent."""

import json
import math

import pytest

from audio_vq.config import ConfigError, compose
from audio_vq.stages.evaluate import report, sections, skip_reason
from audio_vq.stages.evaluate.alignments import DEFAULT_SILENCES

from tiny import INFERENCE, TINY_HOP


def run(trained, out, *overrides):
    cfg = compose(
        "evaluate",
        [
            f"model={trained / 'run' / 'model'}",
            f"data={trained / 'data'}",
            f"out={out}",
            "split=[train,valid,test]",
            "max_utterances=8",
            "reconstruct_utterances=2",
            "excerpt_seconds=0.2",
            "abx_max_triples=5",
            *overrides,
        ],
        package=INFERENCE,
    )
    return report.evaluate(cfg)


@pytest.fixture(scope="module")
def evaluated(tiny_trained, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval")
    run(tiny_trained, out)
    return out, json.loads((out / "report.json").read_text())


def test_report_has_every_section(evaluated):
    out, r = evaluated
    for section in ("codebook", "phonetic", "abx", "reconstruction", "conversion", "f0", "voice", "training_curves"):
        assert skip_reason(r[section]) is None, (section, r[section])
    md = (out / "report.md").read_text()
    for heading in (
        "## Codebook health",
        "## Phonetic quality",
        "## ABX",
        "## Reconstruction",
        "## Voice conversion",
        "## Training curves",
    ):
        assert heading in md
    assert "within speaker, ours | within, ZeroSpeech averaging" in md
    for png in ("codebook_usage", "pnmi", "code_to_phone_accuracy", "spectrograms", "training_curves"):
        assert (out / f"{png}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(list((out / "audio").glob("*_reconstruction.wav"))) == 2


def test_codebook_numbers_are_consistent(evaluated):
    _, r = evaluated
    c = r["codebook"]
    assert c["frame_rate"] == 16_000 / TINY_HOP and c["codebook_size"] == 16
    assert sum(c["counts"]) == c["frames"] and c["codes_used"] + c["dead_codes"] == 16
    assert c["bitrate_nominal"] == pytest.approx(1000 * math.log2(16))
    assert c["bitrate_entropy"] == pytest.approx(1000 * c["entropy_bits"])
    assert 1 <= c["perplexity"] <= c["codes_used"]
    assert r["utterances"] == 8


def test_phonetic_baselines_and_expectation(evaluated):
    _, r = evaluated
    systems = r["phonetic"]["systems"]
    assert set(systems) == {"model", "random", "mfcc_kmeans"}
    for s in systems.values():
        assert 0 <= s["pnmi"] <= 1 and 0 < s["phone_purity"] <= 1 and 0 <= s["code_to_phone_accuracy"] <= 1
    # random codes land near their analytic expectation
    assert systems["random"]["phone_purity"] == pytest.approx(
        r["phonetic"]["random_expectation"]["phone_purity"], rel=0.25
    )
    assert set(r["abx"]) == {
        "model codebook vectors, by context",
        "model codebook vectors, phone only",
        "mfcc, by context",
        "mfcc, phone only",
    }
    for scores in r["abx"].values():  # ours and the ZeroSpeech averaging of the same cells, side by side
        for side in ("within", "across"):  # None (no cell: 8 utterances) for both or neither
            zerospeech = scores[f"{side}_zerospeech"]
            assert (zerospeech is None) == (scores[side] is None) and (zerospeech is None or 0 <= zerospeech <= 100)
    assert set(r["config"]["silence"]) == DEFAULT_SILENCES


def test_conversion_probes(evaluated):
    _, r = evaluated
    cv = r["conversion"]
    assert cv["conversions"] == 2 and cv["probe_speakers"] == 4 and cv["probe_chance"] == 0.25
    assert 0 <= cv["classified_as_target"] <= 1 and cv["code_probe"]["chance"] > 0
    assert cv["parallel"] is None  # this synthetic corpus has no repeated texts
    use = cv["decoder_speaker_use"]
    assert use["utterances"] == 2 and use["chance"] == 0.25  # own + 3 other speakers
    assert use["gain_nats"] == pytest.approx(use["other_loss"] - use["own_loss"])


def test_bad_config_names_the_key(tiny_trained, tmp_path):
    with pytest.raises(ConfigError, match="split=nope"):
        run(tiny_trained, tmp_path, "split=nope")
    with pytest.raises(ConfigError, match="max_utterances"):
        run(tiny_trained, tmp_path, "max_utterances=1")


def _config(tmp_path, *overrides):
    return compose(
        "evaluate",
        [f"model={tmp_path}", "data=manifest.jsonl", f"out={tmp_path / 'out'}", *overrides],
        package=INFERENCE,
    )


def test_silence_key_defaults_to_the_one_silence_set(tmp_path):
    silence = list(_config(tmp_path).silence)
    assert len(silence) == len(set(silence)) and set(silence) == DEFAULT_SILENCES
    assert {"pau", "h#"} <= DEFAULT_SILENCES  # Festival's pause, TIMIT's edge silence
    report._check(_config(tmp_path, 'silence=[sil,"h#"]'))
    report._check(_config(tmp_path, "silence=[]"))  # every label a phone


@pytest.mark.parametrize("bad", ["silence=sil", "silence=[sil,3]", "silence=null"])
def test_bad_silence_is_refused_in_one_line_naming_the_key(tmp_path, bad):
    with pytest.raises(ConfigError, match=r"^silence=.*expected a list of labels") as err:
        report._check(_config(tmp_path, bad))
    assert "\n" not in str(err.value)


class _Stop(Exception):
    """Ends an evaluate run once the phonetic sections are computed (the rest is not under test)."""


def test_the_silence_key_reaches_every_phonetic_metric(tiny_trained, evaluated, tmp_path, monkeypatch):
    seen = {}
    phonetic_quality, abx_section = sections.phonetic_quality, sections.abx_section

    def abx_then_stop(*args, **kwargs):
        seen["abx"] = abx_section(*args, **kwargs)
        raise _Stop

    monkeypatch.setattr(
        sections, "phonetic_quality", lambda *a, **k: seen.setdefault("phonetic", phonetic_quality(*a, **k))
    )
    monkeypatch.setattr(sections, "abx_section", abx_then_stop)
    with pytest.raises(_Stop):
        run(tiny_trained, tmp_path, "silence=[]", "mfcc_kmeans=false")  # the synthetic corpus' "sil" is a phone now
    _, default = evaluated
    assert seen["phonetic"]["phones"] == default["phonetic"]["phones"] + 1
    assert seen["phonetic"]["labelled_frames"] > default["phonetic"]["labelled_frames"]
    key = "model codebook vectors, by context"
    assert seen["abx"][key]["items"] > default["abx"][key]["items"]


def test_parallel_texts_give_mcd_after_dtw(tiny_trained, tmp_path):
    from audio_vq.manifest import read_manifest, write_manifest

    utts = read_manifest(tiny_trained / "data")
    for u in utts:
        u.text = "the same sentence"  # every speaker "reads" every text: each conversion has a target recording
    write_manifest(tmp_path / "data" / "manifest.jsonl", utts, relative=False)
    cfg = compose(
        "evaluate",
        [
            f"model={tiny_trained / 'run' / 'model'}",
            f"data={tmp_path / 'data'}",
            f"out={tmp_path / 'out'}",
            "split=[train,valid,test]",
            "max_utterances=4",
            "reconstruct_utterances=2",
            "excerpt_seconds=0.2",
            "mfcc_kmeans=false",
        ],
        package=INFERENCE,
    )
    report.evaluate(cfg)
    par = json.loads((tmp_path / "out" / "report.json").read_text())["conversion"]["parallel"]
    assert par["pairs"] == 2
    assert par["mcd_filterbank_conversion_vs_target"] > 0 and par["mcd_filterbank_source_vs_target"] > 0
    assert "MCD-DTW conversion vs target" in (tmp_path / "out" / "report.md").read_text()


def test_sources_of_unseen_speakers_are_converted_and_reported_apart(tiny_trained, tmp_path):
    from audio_vq.manifest import read_manifest, write_manifest

    utts = read_manifest(tiny_trained / "data")
    stranger = sorted({u.speaker for u in utts})[-1]
    for u in utts:
        if u.speaker == stranger:
            u.speaker = "newcomer"  # not in the model's speakers.json: no embedding
    write_manifest(tmp_path / "data" / "manifest.jsonl", utts, relative=False)
    (tmp_path / "data" / "speakers.json").write_text((tiny_trained / "data" / "speakers.json").read_text())
    cfg = compose(
        "evaluate",
        [
            f"model={tiny_trained / 'run' / 'model'}",
            f"data={tmp_path / 'data'}",
            f"out={tmp_path / 'out'}",
            "split=[train,valid,test]",
            "max_utterances=8",
            "reconstruct_utterances=3",
            "excerpt_seconds=0.2",
            "mfcc_kmeans=false",
        ],
        package=INFERENCE,
    )
    report.evaluate(cfg)
    r = json.loads((tmp_path / "out" / "report.json").read_text())
    unseen = r["conversion"]["unseen_sources"]
    # 8 utterances dealt over 4 speakers: the newcomer's 2 are converted, 3 of the others reconstructed
    assert unseen["conversions"] == 2 and unseen["source_speakers"] == 1
    assert 0 <= unseen["classified_as_target"] <= 1
    assert r["f0"]["unseen_sources"]["conversions"] == 2 and r["f0"]["unseen_sources"]["reconstructions"] == 0
    audio_files = [p.name for p in (tmp_path / "out" / "audio").iterdir()]
    assert not any(n.endswith("_reconstruction.wav") and "newcomer" in n for n in audio_files)
    newcomer_ids = {u.id for u in utts if u.speaker == "newcomer"}
    assert sum(n.split("_to_")[0] in newcomer_ids for n in audio_files if "_to_" in n) == 2
    assert r["reconstruction"]["utterances"] == 3  # the seen speakers' excerpts, as before
    assert "never saw" in (tmp_path / "out" / "report.md").read_text()


def test_voice_instruments_are_reported_and_named(evaluated):
    from audio_vq.stages.evaluate import speaker_encoder, world

    out, r = evaluated
    v = r["voice"]
    if world.unavailable() is None:
        rec = v["world"]["reconstruction"]
        assert rec["utterances"] == 2 and rec["mcd_db"] > 0 and 0 <= rec["vuv_error"] <= 1
        assert v["world"]["seen"]["conversions"] == 2 and "SPTK" in v["instruments"]["mcd"]
        assert (out / "f0_contours.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    else:
        assert v["world"] is None and "pyworld" in v["instruments"]["mcd"]
    if speaker_encoder.unavailable() is None:
        secs = v["secs"]
        assert secs["reconstructions"] == 2 and secs["seen"]["conversions"] == 2
        assert -1 <= secs["seen"]["conversion_vs_target"] <= 1 and 0 <= secs["seen"]["closer_to_target"] <= 1
        assert v["instruments"]["speaker_similarity"] == speaker_encoder.INSTRUMENT
    md = (out / "report.md").read_text()
    assert "## Voice, measured with the field's instruments" in md and v["instruments"]["f0"] in md


def evaluate_levels(model, tiny_trained, out):
    """(config, report.json) of a quick evaluate of a model of several levels on the tiny corpus."""
    cfg = compose(
        "evaluate",
        [
            f"model={model}",
            f"data={tiny_trained / 'data'}",
            f"out={out}",
            "split=[train,valid,test]",
            "max_utterances=8",
            "reconstruct_utterances=2",
            "excerpt_seconds=0.2",
            "abx_max_triples=5",
            "voice_metrics=false",
        ],
        package=INFERENCE,
    )
    report.evaluate(cfg)
    return cfg, json.loads((out / "report.json").read_text())


def test_a_residual_model_is_evaluated_per_level_and_combined(tiny_trained, tiny_residual, tmp_path):
    from tiny import RESIDUAL_LEVELS as Q

    cfg, r = evaluate_levels(tiny_residual, tiny_trained, tmp_path)
    c = r["codebook"]
    assert c["num_codebooks"] == Q and len(c["levels"]) == Q and c["codebook_size"] == 16
    assert c["bitrate_nominal"] == pytest.approx(1000 * Q * math.log2(16))
    assert sum(c["counts"]) == c["frames"] == c["levels"][0]["frames"]
    assert c["joint_symbols"] >= max(lv["codes_used"] for lv in c["levels"])  # tuples are at least as many
    assert c["entropy_bits"] >= max(lv["entropy_bits"] for lv in c["levels"]) - 1e-9  # H(joint) >= H(any level)
    levels = r["phonetic"]["levels"]
    assert len(levels) == Q and all(0 <= lv["pnmi"] <= 1 for lv in levels)
    # the combined units carry at least the information about the phone that any level carries
    assert r["phonetic"]["systems"]["model"]["pnmi"] >= max(lv["pnmi"] for lv in levels) - 1e-9
    assert f"{Q} codebooks (levels at 1000.00, 1000.00, 1000.00 Hz)" in (tmp_path / "report.md").read_text()
    # levels=1: the first level alone, reported as a one-codebook model
    report.evaluate(
        compose("evaluate", [*cfg_overrides(cfg), f"out={tmp_path / 'one'}", "levels=1"], package=INFERENCE)
    )
    one = json.loads((tmp_path / "one" / "report.json").read_text())
    assert "num_codebooks" not in one["codebook"] and one["phonetic"]["levels"] is None
    assert one["codebook"]["perplexity"] == pytest.approx(c["levels"][0]["perplexity"])


def test_a_hierarchy_is_evaluated_with_each_level_at_its_own_rate(tiny_trained, tiny_hierarchical, tmp_path):
    from tiny import HIERARCHY_RATIO as R

    _, r = evaluate_levels(tiny_hierarchical, tiny_trained, tmp_path)
    c = r["codebook"]
    top, bottom = c["levels"]
    assert c["frame_rates"] == [1000 / R, 1000] and top["frame_rate"] == 1000 / R
    assert c["bitrate_nominal"] == pytest.approx(1000 * (1 + 1 / R) * math.log2(16))
    assert bottom["frames"] == c["frames"] and R * (top["frames"] - 8) < bottom["frames"] <= R * top["frames"]
    # chain rule: the top counted once per top code, the bottom given the top at the full rate
    assert top["entropy_bits"] > 0
    assert c["bitrate_entropy"] < 1000 * c["entropy_bits"] - 1
    assert c["bitrate_entropy"] >= bottom["frame_rate"] * (c["entropy_bits"] - top["entropy_bits"]) - 1e-6
    assert skip_reason(r["abx"]) is None and skip_reason(r["reconstruction"]) is None


def cfg_overrides(cfg):
    return [
        f"{k}={cfg[k]}"
        for k in (
            "model",
            "data",
            "max_utterances",
            "reconstruct_utterances",
            "excerpt_seconds",
            "abx_max_triples",
            "voice_metrics",
        )
    ] + ["split=[train,valid,test]"]
