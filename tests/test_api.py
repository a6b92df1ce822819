"""The Python API: a command's function composes what the command line composes and runs the
same stage, and a model in memory (Codec) decodes what the commands write, sample for sample."""

import numpy as np
import pytest
import soundfile as sf

import audio_vq
from audio_vq import api
from audio_vq.commands import compose_command
from audio_vq.config import ConfigError
from audio_vq.manifest import read_manifest

PCM_STEP = 1 / 32768  # what writing 16-bit PCM may change a sample by


def test_keyword_arguments_compose_what_the_command_line_composes(tmp_path):
    """Catches overrides built by string pasting: a speaker named with digits must stay a name,
    a path with spaces, quotes or '=' must arrive whole, None must be null."""
    odd = tmp_path / "a b=c,d'e" / "x.wav"
    options = {
        "model": str(tmp_path / "m"),
        "input": odd,
        "out": str(tmp_path / "o"),
        "speaker": "103",
        "levels": None,
        "seed": 3,
        "temperature": 0.7,
        "argmax": False,
    }
    cfg, folder = compose_command("reconstruct", api.overrides(options))
    assert folder is None and cfg.speaker == "103" and isinstance(cfg.speaker, str)
    assert cfg.input == str(odd) and cfg.levels is None and cfg.seed == 3 and cfg.temperature == 0.7
    cli, _ = compose_command(
        "reconstruct",
        [
            f"model={tmp_path / 'm'}",
            "input=x",
            f"out={tmp_path / 'o'}",
            "speaker='103'",
            "levels=null",
            "seed=3",
            "temperature=0.7",
        ],
    )
    assert {k: v for k, v in cfg.items() if k != "input"} == {k: v for k, v in cli.items() if k != "input"}
    nested, run = compose_command(
        "train",
        api.overrides(
            {"model": "paper", "train": {"max_steps": 7}, "data.crop_seconds": 0.5, "hydra.run.dir": tmp_path / "r"}
        ),
    )
    assert nested.train.max_steps == 7 and nested.data.crop_seconds == 0.5 and run == str(tmp_path / "r")
    assert nested.model.decoder.pitch == "none"  # model=paper chose the group's option


def test_a_bad_value_raises_the_commands_error(tiny_trained, tmp_path):
    with pytest.raises(ConfigError, match="format='nope': expected gslm"):
        audio_vq.extract(
            model=tiny_trained / "run" / "model",
            input=tiny_trained / "data",
            output=tmp_path / "units.txt",
            format="nope",
        )
    with pytest.raises(ValueError, match="unknown command"):
        api.run("no-such-command")


def test_the_command_functions_run_the_stages(tiny_trained, tmp_path):
    model = tiny_trained / "run" / "model"
    ids = {uid for uid, _, _ in first_inputs(tiny_trained / "data", tmp_path / "inputs")}
    units = audio_vq.extract(
        model=model, input=tmp_path / "inputs", output=tmp_path / "u" / "units.jsonl", format="jsonl"
    )
    assert units == tmp_path / "u" / "units.jsonl" and (tmp_path / "u" / "units.jsonl.meta.json").is_file()
    out = audio_vq.synthesize(model=model, units=units, speaker="spk01", out=tmp_path / "synth")
    assert out == tmp_path / "synth" and {p.stem for p in out.glob("*.wav")} == ids


def first_inputs(data, folder, n=2):
    """n half-second wavs of the corpus (voiced, so contours differ): [(id, path, speaker)]."""
    folder.mkdir()
    out = []
    for u in read_manifest(data)[:n]:
        x, rate = sf.read(u.path, dtype="float32")
        sf.write(folder / f"{u.id}.wav", x[: rate // 2], rate)
        out.append((u.id, folder / f"{u.id}.wav", u.speaker))
    return out


@pytest.mark.parametrize("fixture", ["tiny_trained", "tiny_pitch"])
def test_in_memory_decoding_is_what_the_commands_write(fixture, request, tiny_trained, tmp_path):
    """Catches the Codec and the commands drifting apart: another noise seed, a contour left
    in the source's register, another speaker. A pitch model covers contours and registers."""
    root = request.getfixturevalue(fixture)
    model = root / "run" / "model" if fixture == "tiny_trained" else root / "model"
    inputs = first_inputs(tiny_trained / "data", tmp_path / "inputs")
    (uid, path, speaker), target = inputs[0], "spk03"
    rec = audio_vq.reconstruct(model=model, input=tmp_path / "inputs", out=tmp_path / "rec", speaker=speaker, seed=5)
    conv = audio_vq.convert(model=model, input=path, out=tmp_path / "conv", target_speaker=target, seed=5)
    codec = audio_vq.load(model, seed=5)
    x = codec.load(path)
    for got, file in [
        (codec.reconstruct(path, speaker, name=uid), rec / f"{uid}.wav"),
        (codec.reconstruct(x, speaker, sample_rate=codec.sample_rate, name=uid), rec / f"{uid}.wav"),
        (codec.convert(path, target, name=f"{uid}__{target}"), conv / f"{uid}__{target}.wav"),
    ]:
        written, rate = sf.read(file, dtype="float32")
        assert rate == codec.sample_rate and got.shape == written.shape
        np.testing.assert_allclose(np.clip(got, -1, 1), written, atol=PCM_STEP)
    other = codec.convert(path, "spk01", name=f"{uid}__{target}")  # the same noise, another voice
    assert not np.allclose(other, codec.convert(path, target, name=f"{uid}__{target}"), atol=1e-3)


def test_synthesize_in_memory_decodes_extracted_units_as_reconstruct_does(tiny_trained):
    codec = audio_vq.load(tiny_trained / "run" / "model", seed=2)
    u = read_manifest(tiny_trained / "data")[0]
    units = codec.encode(u.path)
    assert units.codes.shape == (1, -(-units.num_samples // codec.model.hop))
    np.testing.assert_array_equal(
        codec.synthesize(units.codes, u.speaker, name="a"), codec.reconstruct(u.path, u.speaker, name="a")
    )
    with pytest.raises(ConfigError, match="speaker=nobody: unknown speaker; this model knows: spk"):
        codec.synthesize(units.codes, "nobody")


def test_a_typed_object_with_nested_schemas_gives_the_fields_it_sets():
    """Nested options (the train command's model, quantizer and loop) reach the command as dotted
    keys, only those set: catches a nested object passed whole (its MISSING fields overriding the
    preset) or dropped."""
    from audio_vq.api import _set_fields, overrides
    from audio_vq.config import compose
    from audio_vq.options import GumbelQuantizerOptions, ModelOptions, TrainCommandOptions, TrainOptions

    typed = TrainCommandOptions(
        model=ModelOptions(quantizer=GumbelQuantizerOptions(temperature=3.0)), train=TrainOptions(max_steps=3)
    )
    keys = overrides(_set_fields(typed))
    assert keys == ["model.quantizer.temperature=3.0", "train.max_steps=3"]
    cfg = compose("train", ["model/quantizer=gumbel", *keys])
    assert (cfg.model.quantizer.temperature, cfg.train.max_steps, cfg.train.lr) == (3.0, 3, 4e-4)


def test_the_codec_defaults_are_the_decode_preset():
    """A Codec decodes as the commands do by default: its sampling and chunking defaults are
    decode.yaml's values. Catches one of the two changed without the other."""
    import dataclasses
    import inspect

    from omegaconf import OmegaConf

    from audio_vq.codec import Codec, Sampling
    from audio_vq.config import config_text

    preset = OmegaConf.create(config_text("decode", "audio_vq.configs.inference"))
    for f in dataclasses.fields(Sampling):
        assert f.default == preset[f.name], f.name
    for name, parameter in inspect.signature(Codec).parameters.items():
        if name in preset and parameter.default is not inspect.Parameter.empty:
            assert parameter.default == preset[name], name
