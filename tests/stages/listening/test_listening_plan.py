"""Which utterances a test uses and where they are converted to: spread, seeded, reproducible."""

import pytest

from audio_vq.config import ConfigError
from audio_vq.manifest import Utterance
from audio_vq.stages.listening import plan

SPEAKERS = {"a": 0, "b": 1, "c": 2}


def utts():
    out = [Utterance(f"{s}_{i}", f"/x/{s}_{i}.wav", s, 16000, 16000, "test") for s in "abc" for i in range(4)]
    out += [
        Utterance("z_0", "/x/z_0.wav", "z", 16000, 16000, "test"),  # a speaker the model does not know
        Utterance("a_train", "/x/a_t.wav", "a", 16000, 16000, "train"),
    ]
    return out


def test_round_robin_over_speakers_is_seeded_and_reproducible():
    pool, split = plan.usable_utterances(utts(), "auto", SPEAKERS)
    assert split == "test" and "z_0" in {u.id for u in pool} and "a_train" not in {u.id for u in pool}
    pool = [u for u in pool if u.speaker in SPEAKERS]
    chosen = plan.choose_utterances(pool, 5, seed=0)
    assert [u.speaker for u in chosen] == ["a", "b", "c", "a", "b"]
    assert [u.id for u in chosen] == [u.id for u in plan.choose_utterances(pool, 5, seed=0)]
    assert [u.id for u in chosen] != [u.id for u in plan.choose_utterances(pool, 5, seed=1)]
    assert len(plan.choose_utterances(pool, 100, seed=0)) == 12  # no more than exist


def test_unseen_speakers_are_converted_to_known_voices_and_not_reconstructed():
    pool, _ = plan.usable_utterances(utts(), "auto", SPEAKERS)
    z = [u for u in pool if u.speaker == "z"]
    for spec, expect in (
        (plan.parse_targets(None, 1), 1),
        (plan.parse_targets(0, 1), 1),
        (plan.parse_targets("all", 1), 3),
        (plan.parse_targets("a,b", 0), 2),
    ):
        (p,) = plan.plan_trials(z, spec, list(SPEAKERS), seed=0)
        assert not p.reconstruct and len(p.targets) == expect and set(p.targets) <= set(SPEAKERS)
    assert all(
        p.reconstruct
        for p in plan.plan_trials(
            [u for u in pool if u.speaker == "a"], plan.parse_targets(None, 1), list(SPEAKERS), seed=0
        )
    )


def test_split_falls_back_and_errors_name_the_key():
    only_train = [u for u in utts() if u.split == "train"]
    assert plan.usable_utterances(only_train, "auto", SPEAKERS)[1] == "train"
    with pytest.raises(ConfigError, match="split=valid: no utterance"):
        plan.usable_utterances(utts(), "valid", SPEAKERS)


def test_targets_never_the_own_speaker_and_counts_are_drawn_with_the_seed():
    known = [u for u in plan.usable_utterances(utts(), "auto", SPEAKERS)[0] if u.speaker in SPEAKERS]
    chosen = plan.choose_utterances(known, 3, seed=0)
    for spec, expect in (
        (plan.parse_targets(None, 1), 1),
        (plan.parse_targets("all", 1), 2),
        (plan.parse_targets(5, 0), 2),
        (plan.parse_targets(0, 1), 0),
    ):
        for p in plan.plan_trials(chosen, spec, list(SPEAKERS), seed=0):
            assert len(p.targets) == expect and p.utterance.speaker not in p.targets
    named = plan.plan_trials(chosen, plan.parse_targets("a,b", 0), list(SPEAKERS), seed=0)
    assert [p.targets for p in named] == [("b",), ("a",), ("a", "b")]
    with pytest.raises(ConfigError, match="targets=-1"):
        plan.parse_targets(-1, 0)
