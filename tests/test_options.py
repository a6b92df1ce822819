"""Typed options: the presets extend their schemas, and each key is checked in one place
(its field), whether it comes from the command line, a preset or Python."""

import dataclasses

import pytest
from omegaconf import OmegaConf

import audio_vq
from audio_vq import options
from audio_vq.commands import COMMANDS
from audio_vq.config import ConfigError, compose
from audio_vq.options import GROUP_SCHEMAS, SCHEMAS, ExtractOptions, TrainOptions
from audio_vq.rendering import check_decode_options

INFERENCE = "audio_vq.configs.inference"
REQUIRED = {
    "extract": ["model=/m", "input=/i", "output=/o"],
    "units_convert": ["input=/i", "output=/o", "format=jsonl"],
    "reconstruct": ["model=/m", "input=/i", "out=/o"],
    "convert": ["model=/m", "input=/i", "out=/o", "target_speaker=a,b"],
    "synthesize": ["model=/m", "units=/u", "out=/o", "speaker=spk01"],
    "sample": ["prior=/p", "model=/m", "out=/o", "speaker=spk01"],
    "evaluate": ["model=/m", "data=/d", "out=/o"],
    "evaluate_prior": ["prior=/p", "out=/o"],
    "prepare": ["corpus=folder", "root=/r", "out=/o"],
    "train": [],
    "train_prior": ["units=/u"],
    "export_listening_test": ["model=/m", "data=/d", "out=/o", "kind=mos"],
    "listening_results": ["results=/r", "key=/k"],
}
GROUP_COMMANDS = {"model/quantizer": ("train", "model/quantizer="), "corpus": ("prepare", "corpus=")}


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_each_preset_extends_its_schema_with_exactly_its_keys(name):
    """Catches a preset that forgot its schema (untyped again) or holds a key the schema lacks
    (Hydra refuses it) or misses one (MISSING: composition fails)."""
    cfg = compose(name, REQUIRED[name], package=COMMANDS[name.replace("_", "-")].package)
    assert OmegaConf.get_type(cfg) is SCHEMAS[name]
    assert set(cfg) == {f.name for f in dataclasses.fields(SCHEMAS[name])}


@pytest.mark.parametrize("group, option", sorted(GROUP_SCHEMAS))
def test_each_group_option_is_typed_by_its_own_schema(group, option):
    """A group whose options have different keys (the quantizers, the corpora): the chosen
    option's node is typed by its schema, with exactly its keys. Catches an option YAML that
    forgot its schema (its keys unchecked) or holds a key the schema lacks."""
    command, choose = GROUP_COMMANDS[group]
    cfg = compose(command, [c for c in REQUIRED[command] if not c.startswith(choose)] + [choose + option])
    node = OmegaConf.select(cfg, group.replace("/", "."))
    assert OmegaConf.get_type(node) is GROUP_SCHEMAS[group, option]
    assert set(node) == {f.name for f in dataclasses.fields(GROUP_SCHEMAS[group, option])}


def test_every_group_option_has_a_schema():
    """Catches a new quantizer or corpus YAML without its schema (its keys would not be typed)."""
    from audio_vq.config import group_options

    for group in GROUP_COMMANDS:
        for option in group_options(group):
            cfg = compose(
                GROUP_COMMANDS[group][0],
                [*REQUIRED["prepare"][1:], GROUP_COMMANDS[group][1] + option]
                if group == "corpus"
                else [GROUP_COMMANDS[group][1] + option],
            )
            assert options.schema_of(OmegaConf.select(cfg, group.replace("/", "."))) is not None, (group, option)


@pytest.mark.parametrize(
    "overrides, message",
    [
        # the chosen quantizer's own keys: Hydra would take yes as true
        (["model.quantizer.cosine=yes"], "model.quantizer.cosine='yes': expected true or false"),
        (["model/quantizer=gumbel", "model.quantizer.temperature=abc"], "temperature='abc': expected a finite number"),
        (["model.quantizer.top_strides=[2]"], "unknown key 'model.quantizer.top_strides'"),  # vector's keys only
        (["model.decoder.stacks=2.5"], "model.decoder.stacks=2.5: expected an integer"),
        (["model.decoder.stacks=yes"], "model.decoder.stacks='yes': expected a finite number"),
        (["train.max_steps=abc"], "train.max_steps='abc': expected an integer >= 1"),
        (["data.num_workers=-1"], "data.num_workers=-1: expected auto or an integer >= 0"),
        (["data.pitch_tracker=crepe"], "data.pitch_tracker='crepe': expected harvest | dio | pyin"),
    ],
)
def test_train_keys_are_checked_against_the_chosen_options_schema(overrides, message):
    with pytest.raises(ConfigError) as e:
        compose("train", overrides)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_a_command_composes_once(monkeypatch):
    """Catches the override check composing the config a second time (it did for every untyped
    command): only a value Hydra refuses sends composition round again, to find the field."""
    import hydra

    calls = []
    real = hydra.compose
    monkeypatch.setattr(hydra, "compose", lambda *a, **k: calls.append(k) or real(*a, **k))
    compose("train", ["train.max_steps=3", "model/quantizer=gumbel", "model.quantizer.temperature=3"])
    compose("prepare", ["corpus=synthetic", "root=/r", "out=/o", "corpus.minutes=1"])
    assert len(calls) == 2
    with pytest.raises(ConfigError, match="train.max_steps='abc': expected an integer >= 1"):
        compose("train", ["train.max_steps=abc"])
    assert len(calls) == 4


@pytest.mark.parametrize(
    "override, message",
    [
        ("merge=yes", "merge='yes': expected true or false"),  # Hydra's schema alone would take yes as true
        ("batch_size=abc", "batch_size='abc': expected an integer >= 1"),
        ("batch_size=1.5", "batch_size=1.5: expected an integer >= 1"),
        ("num_workers=-1", "num_workers=-1: expected an integer >= 0"),
        ("chunk_seconds=inf", "chunk_seconds=inf: expected a finite number"),  # as before typing
        ("chunk_seconds=0", "chunk_seconds=0: expected seconds > 0"),
        ("format=wav", "format='wav': expected gslm | textless | jsonl | npz | zerospeech"),
        ("split=dev", "split='dev': expected null | train | valid | test"),
        ("levels=0", "levels=0: expected null (all) or an integer >= 1"),
        ("output=", "output='': expected an output file (or folder for zerospeech)"),
        ("colour=red", "colour"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_key(override, message):
    with pytest.raises(ConfigError) as e:
        compose("extract", [*REQUIRED["extract"], override], package=INFERENCE)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_the_check_holds_for_values_set_after_composing_and_for_typed_objects(tmp_path):
    """The stage validates what it is given, so a config changed in Python is checked too; and a
    typed options object reaches the command as its keys."""
    cfg = compose("extract", REQUIRED["extract"], package=INFERENCE)
    cfg.batch_size = 0  # the right type, out of range
    with pytest.raises(ConfigError, match="batch_size=0: expected an integer >= 1"):
        options.validate(cfg)
    with pytest.raises(ConfigError, match="block_size=0: expected an integer >= 1"):
        audio_vq.extract(ExtractOptions(model=str(tmp_path), input=str(tmp_path), block_size=0), output="u.txt")


def test_a_numeric_name_stays_a_name_and_shared_keys_are_checked_for_every_decoder():
    """speaker=103 (LibriSpeech's speakers are numbers) is the name "103" for a typed command; the
    decode.yaml keys are checked by one schema for every command that decodes (at composition,
    and by the Renderer on a config changed in Python)."""
    cfg = compose("synthesize", [*REQUIRED["synthesize"][:-1], "speaker=103"], package=INFERENCE)
    assert cfg.speaker == "103"
    expected = r"voiced_temperature=0: expected null \(= temperature\) or a number > 0"
    with pytest.raises(ConfigError, match=expected):
        compose("synthesize", [*REQUIRED["synthesize"], "voiced_temperature=0"], package=INFERENCE)
    with pytest.raises(ConfigError, match=expected):
        compose(
            "export_listening_test", [*REQUIRED["export_listening_test"], "voiced_temperature=0"], package=INFERENCE
        )
    cfg = compose("export_listening_test", REQUIRED["export_listening_test"], package=INFERENCE)
    cfg.voiced_temperature = 0.0
    with pytest.raises(ConfigError, match=expected.replace("=0:", "=0.0:")):
        check_decode_options(cfg)


def test_a_nested_schema_checks_its_keys_and_the_stage_the_rule_between_them():
    """prepare's split is a schema of its own inside PrepareOptions: a dotted key reaches its
    field's check; the sum of two fractions is the stage's rule."""
    with pytest.raises(ConfigError, match=r"split.valid=2: expected a fraction in \[0, 1\)"):
        compose("prepare", [*REQUIRED["prepare"], "split.valid=2"])
    from audio_vq.stages.prepare import _check_config

    cfg = compose("prepare", [*REQUIRED["prepare"], "split.valid=0.6", "split.test=0.5"])
    with pytest.raises(ConfigError, match="expected split.valid \\+ split.test < 1"):
        _check_config(cfg)


def test_the_chosen_corpus_types_its_keys():
    """prepare's corpus keys are the chosen corpus's schema: a value of the wrong kind is refused
    naming the key, a key of another corpus is unknown, a numeric speaker name stays a name."""
    with pytest.raises(ConfigError, match="corpus.minutes='abc': expected a finite number"):
        compose("prepare", ["corpus=synthetic", "root=/r", "out=/o", "corpus.minutes=abc"])
    with pytest.raises(ConfigError, match="unknown key 'corpus.minutes'"):
        compose("prepare", ["corpus=vctk", "root=/r", "out=/o", "corpus.minutes=1"])
    assert compose("prepare", ["corpus=ljspeech", "root=/r", "out=/o", "corpus.speaker=103"]).corpus.speaker == "103"


def test_a_registry_extends_a_check():
    """format's choices are the unit-format registry's, read when checked (a new format is one class)."""
    check = options._checks(ExtractOptions, "format")[-1]
    assert str(check.expected) == " | ".join(audio_vq.units.FORMATS) and check.ok("npz") and not check.ok("wav")


@pytest.mark.parametrize("command, required", [("train", []), ("train_prior", ["units=/u"])])
def test_the_training_loops_keys_are_one_schema_for_both_trainers(command, required):
    """TrainOptions holds every key of the train presets, checked for train and train-prior alike,
    at composition and by the stage on a config changed in Python. Catches a key added to a preset
    and not to the schema (unchecked), and a check left behind in one command."""
    cfg = compose(command, required)
    assert OmegaConf.get_type(cfg.train) is TrainOptions
    with pytest.raises(ConfigError, match="train.lr=0: expected a learning rate > 0"):
        compose(command, [*required, "train.lr=0"])
    cfg.train.lr = 0.0
    with pytest.raises(ConfigError, match="train.lr=0.0: expected a learning rate > 0"):
        options.validate(cfg)
