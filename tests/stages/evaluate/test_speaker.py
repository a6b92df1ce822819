"""Speaker probes: on toy speech of speakers that differ in pitch and vocal tract, and on code
histograms drawn with and without a speaker dependence."""

import json

import numpy as np
import pytest

from audio_vq.audio import load
from audio_vq.corpora.synthetic import generate
from audio_vq.stages.evaluate.speaker import (
    FEATURE_DIM,
    SpeakerProbe,
    code_speaker_probe,
    speaker_features,
    utterance_features,
)

NUM_SPEAKERS = 4


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[list[np.ndarray], list[str]]:
    """~35 s of toy speech: 4 speakers, 6-7 utterances of 1-1.6 s each (about a second to make)."""
    root = generate(
        tmp_path_factory.mktemp("synthetic"),
        num_speakers=NUM_SPEAKERS,
        minutes=0.6,
        seed=0,
        min_seconds=1.0,
        max_seconds=1.6,
    )
    utterances = json.loads((root / "corpus.json").read_text())["utterances"]
    return [load(root / u["path"]) for u in utterances], [u["speaker"] for u in utterances]


@pytest.mark.filterwarnings("ignore:n_fft=.*too large")  # the 300-sample utterance, on purpose
def test_features_have_the_documented_shape(corpus):
    audios, _ = corpus
    assert utterance_features(audios[0]).shape == (FEATURE_DIM,)
    assert speaker_features(audios[:3]).shape == (3, FEATURE_DIM)
    assert utterance_features(audios[0][:300]).shape == (FEATURE_DIM,)  # 2 frames: still defined
    with pytest.raises(ValueError, match="mono"):
        utterance_features(np.zeros((2, 100)))


def test_probe_recognises_held_out_utterances_of_known_speakers(corpus):
    audios, speakers = corpus
    train, test = slice(0, None, 2), slice(1, None, 2)  # alternate utterances: every speaker in both
    probe = SpeakerProbe(seed=0).fit(audios[train], speakers[train])
    assert probe.speakers == sorted(set(speakers))
    accuracy = probe.score(audios[test], speakers[test])
    assert accuracy >= 0.75 > 2 / NUM_SPEAKERS  # chance is 1/4
    # "converted" audio scored against the wrong target speakers: the probe disagrees
    wrong = [probe.speakers[(probe.speakers.index(s) + 1) % NUM_SPEAKERS] for s in speakers[test]]
    assert probe.score(audios[test], wrong) <= 0.25
    again = SpeakerProbe(seed=0).fit(audios[train], speakers[train])
    assert again.predict(audios[test]) == probe.predict(audios[test])  # deterministic


def test_probe_refuses_what_it_cannot_answer(corpus):
    audios, speakers = corpus
    with pytest.raises(RuntimeError, match="not fitted"):
        SpeakerProbe().predict(audios[:1])
    with pytest.raises(ValueError, match="at least 2 speakers"):
        SpeakerProbe().fit(audios[:2], ["a", "a"])
    probe = SpeakerProbe().fit(audios, speakers)
    with pytest.raises(ValueError, match="unknown.*'nobody'"):
        probe.score(audios[:1], ["nobody"])
    with pytest.raises(ValueError, match="labels"):
        probe.score(audios[:2], speakers[:1])
    assert probe.predict([]) == []


def histograms(
    speaker_dependent: bool, per_speaker: int = 12, speakers: int = 4, k: int = 32, frames: int = 200, seed: int = 0
) -> tuple[np.ndarray, list[str]]:
    """Normalised histograms of ``frames`` codes per utterance; with ``speaker_dependent`` each
    speaker draws from its own code distribution, else all from one."""
    rng = np.random.default_rng(seed)
    shared = rng.dirichlet(np.ones(k))
    own = [rng.dirichlet(np.ones(k)) for _ in range(speakers)]
    rows, labels = [], []
    for s in range(speakers):
        p = own[s] if speaker_dependent else shared
        for _ in range(per_speaker):
            rows.append(rng.multinomial(frames, p) / frames)
            labels.append(f"spk{s}")
    return np.array(rows), labels


def test_code_probe_finds_speaker_dependent_codes_and_not_independent_ones():
    dependent = code_speaker_probe(*histograms(True), folds=4, seed=0)
    independent = code_speaker_probe(*histograms(False), folds=4, seed=0)
    assert dependent.chance == independent.chance == 0.25
    assert dependent.majority == 0.25 and dependent.folds == 4 and dependent.num_utterances == 48
    assert dependent.accuracy >= 0.9
    assert independent.accuracy <= 0.45  # chance 0.25, with room for 48 noisy trials
    assert code_speaker_probe(*histograms(True), folds=4, seed=0) == dependent  # deterministic


def test_code_probe_copes_with_few_utterances():
    h, labels = histograms(True, per_speaker=3)
    few = code_speaker_probe(h, labels, folds=5)
    assert few.folds == 3 and few.accuracy is not None  # folds fall to the smallest speaker's count

    lone = code_speaker_probe(np.vstack([h, h[:1]]), labels + ["solo"], folds=5)
    assert lone.dropped_speakers == ["solo"] and lone.num_speakers == 4 and lone.num_utterances == 12

    none = code_speaker_probe(h[:4], ["a", "a", "a", "b"])
    assert none.accuracy is None and "at least 2 speakers" in none.reason and none.dropped_speakers == ["b"]
    with pytest.raises(ValueError, match="labels"):
        code_speaker_probe(h, labels[:-1])
    with pytest.raises(ValueError, match="non-negative"):
        code_speaker_probe(-h, labels)
