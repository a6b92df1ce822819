"""The pretrained speaker encoder (resemblyzer): SECS separates speakers, weights load without
unpickling code, and the report's voice section scores known cases right."""

import pickle

import numpy as np
import pytest

from audio_vq.audio import load
from audio_vq.corpora.synthetic import generate
from audio_vq.stages.evaluate import sections, speaker_encoder, world
from audio_vq.stages.evaluate.speaker_encoder import SpeakerEncoder, SpeakerEncoderError, cosine, speaker_embeddings

pytestmark = pytest.mark.skipif(speaker_encoder.unavailable() is not None, reason=str(speaker_encoder.unavailable()))

SR = 16_000


@pytest.fixture(scope="module")
def voices(tmp_path_factory) -> dict[str, list[np.ndarray]]:
    """Three utterances of each of two toy speakers."""
    root = generate(
        tmp_path_factory.mktemp("synthetic"), num_speakers=2, minutes=0.25, seed=5, min_seconds=1.5, max_seconds=2.0
    )
    return {d.name: [load(p) for p in sorted(d.glob("*.wav"))[:3]] for d in sorted(root.iterdir()) if d.is_dir()}


@pytest.fixture(scope="module")
def encoder() -> SpeakerEncoder:
    return SpeakerEncoder()


def test_an_utterance_is_closer_to_its_own_speaker(voices, encoder):
    (s1, a1), (s2, a2) = voices.items()
    emb = {f"{s}_{i}": encoder.embed(a, SR) for s, utts in voices.items() for i, a in enumerate(utts)}
    speakers = {k: k.rsplit("_", 1)[0] for k in emb}
    assert cosine(emb[f"{s1}_0"], emb[f"{s1}_0"]) == pytest.approx(1.0)
    for uid, e in emb.items():
        means = speaker_embeddings(emb, speakers, exclude=uid)  # leave the utterance itself out
        other = s2 if speakers[uid] == s1 else s1
        assert cosine(e, means[speakers[uid]]) > cosine(e, means[other]), uid


def test_the_embedding_does_not_depend_on_level_or_rate(voices, encoder):
    from audio_vq.audio import resample

    x = next(iter(voices.values()))[0]
    e = encoder.embed(x, SR)
    assert cosine(e, encoder.embed(0.3 * x, SR)) > 0.99  # resemblyzer normalises the volume
    assert cosine(e, encoder.embed(resample(x, SR, 22_050), 22_050)) > 0.95


def test_weights_that_need_unpickling_are_refused(tmp_path, monkeypatch):
    bad = tmp_path / "pretrained.pt"
    bad.write_bytes(pickle.dumps({"model_state": sections.Generated}, protocol=2))  # a class: code, not tensors
    monkeypatch.setattr(speaker_encoder, "_weights_path", lambda: bad)
    with pytest.raises(SpeakerEncoderError, match="weights_only"):
        SpeakerEncoder()


@pytest.mark.skipif(world.unavailable() is not None, reason="pyworld/pysptk missing")
def test_voice_section_on_cases_with_known_answers(voices, encoder):
    (s1, a1), (s2, a2) = voices.items()
    real = {f"{s}_{i}": (s, a) for s, utts in voices.items() for i, a in enumerate(utts)}
    source = a1[0]
    perfect = sections.Generated(f"{s1}_0", s1, s2, source, a2[1])  # "converted" to a real utterance of s2
    unchanged = sections.Generated(f"{s1}_0", s1, s2, source, source)  # a conversion that kept the source
    recon = sections.Generated(f"{s1}_0", s1, s1, source, source)  # a perfect reconstruction
    refs = {s: utts for s, utts in voices.items()}
    v = sections.voice([recon, perfect], real, refs, [], SR, encoder)
    assert v["instruments"]["speaker_similarity"] == speaker_encoder.INSTRUMENT
    assert v["secs"]["seen"]["closer_to_target"] == 1.0
    assert v["secs"]["seen"]["conversion_vs_target"] > v["secs"]["seen"]["source_vs_target"]
    w = v["world"]
    assert w["reconstruction"]["mcd_db"] == 0.0 and w["reconstruction"]["log_f0_rmse_semitones"] == 0.0
    assert w["reconstruction"]["vuv_error"] == 0.0
    kept = sections.voice([unchanged], real, refs, [], SR, encoder)
    assert kept["secs"]["seen"]["closer_to_target"] == 0.0
    # the source's pitch offset from the target is exactly what a pitch-keeping conversion shows
    assert kept["world"]["seen"]["offset_semitones"] == kept["world"]["seen"]["source_offset_semitones"]
    assert abs(kept["world"]["seen"]["offset_semitones"]) > abs(w["seen"]["offset_semitones"])


def test_voice_section_names_what_is_missing(voices):
    (s1, a1), _ = voices.items()
    v = sections.voice([sections.Generated(f"{s1}_0", s1, s1, a1[0], a1[0])], {}, {}, [], SR, None)
    assert v["secs"] is None and "voice_metrics=false" in v["instruments"]["speaker_similarity"]
