"""The Python API: every command as a function, and a trained model in memory.

    import audio_vq
    audio_vq.prepare(corpus="synthetic", root="data/synthetic", out="exp/demo/data")
    model_dir = audio_vq.train(run_dir="runs/demo", data={"manifest": "exp/demo/data"}, train={"max_steps": 400})
    audio_vq.extract(model=model_dir, input="exp/demo/data", output="exp/demo/units.txt")
    codec = audio_vq.load(model_dir)                      # a Codec: audio <-> units in memory
    y = codec.convert(x, target="spk05", sample_rate=16000)

A command's function takes the command's keys as keyword arguments (nested keys as dicts,
``train={"max_steps": 400}``, or dotted, ``**{"train.max_steps": 400}``; a config group's
option as a string, ``model="paper"``), composes exactly the config `audio-vq <command>
key=value ...` composes, and runs the same stage: the command line is a thin layer over
these functions, which raise (ConfigError and the other errors the command prints as one line)
where the command exits with a status. Each returns what it wrote.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from omegaconf import MISSING

from .commands import COMMANDS, compose_command, execute
from .config import flatten

if TYPE_CHECKING:
    from .codec import Codec


def load(model_dir: str | os.PathLike, device: str = "cpu", **options) -> "Codec":
    """A model directory (``<run>/model``) as a :class:`~audio_vq.codec.Codec`: encode,
    reconstruct, convert and synthesize arrays in memory. ``options``: backend, threads,
    chunk_seconds, levels, and the sampling keys seed, temperature, voiced_temperature, argmax."""
    from .codec import Codec, Sampling  # torch: not loaded by the commands that never need it

    names = set(Sampling.__dataclass_fields__)
    sampling = Sampling(**{k: options.pop(k) for k in list(options) if k in names})
    return Codec.from_pretrained(model_dir, device, sampling=sampling, **options)


def run(
    command: str, typed: Any = None, /, run_dir: str | os.PathLike | None = None, **options
) -> tuple[Any, Path | None]:
    """Run ``command`` (a name of `audio-vq --help`, e.g. ``"units-convert"``) with its keys as
    keyword arguments, or as a typed options object (``ExtractOptions(...)`` of options.py:
    the fields it sets; keyword arguments win); (its composed config, its run folder or
    None). ``run_dir``: the run folder of train and train-prior (``hydra.run.dir``)."""
    if command not in COMMANDS:
        raise ValueError(f"unknown command {command!r} (commands: {', '.join(COMMANDS)})")
    if typed is not None:
        options = {**_set_fields(typed), **options}
    if run_dir is not None:
        options = {**options, "hydra.run.dir": run_dir}
    cfg, folder = compose_command(command, overrides(options))
    status = execute(command, cfg, folder)
    if status:
        raise RuntimeError(f"{command} ended with status {status}")
    return cfg, None if folder is None else Path(folder)


def _set_fields(typed: Any) -> dict[str, Any]:
    """The fields a typed options object sets, nested ones as dicts (the others stay the preset's)."""
    if not dataclasses.is_dataclass(typed) or isinstance(typed, type):
        raise TypeError(f"expected a typed options object (e.g. audio_vq.options.ExtractOptions), got {typed!r}")
    fields = {}
    for f in dataclasses.fields(typed):
        value = getattr(typed, f.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            value = _set_fields(value) or MISSING
        if value is not MISSING and value != MISSING:
            fields[f.name] = value
    return fields


def overrides(options: Mapping[str, Any]) -> list[str]:
    """Keyword arguments as Hydra overrides: nested dicts flattened to dotted keys, strings
    quoted (so ``speaker="103"`` stays a name and a path may hold any character), None as null."""
    return [f"{key}={_value(value)}" for key, value in flatten(options).items()]


def _value(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(_value(x) for x in v) + "]"
    text = str(v)  # a str or a path
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


# -- one function per command ------------------------------------------------------------------


def prepare(typed: Any = None, /, **options) -> Path:
    """`audio-vq prepare`: a dataset -> ``out``/manifest.jsonl + speakers.json; returns ``out``."""
    cfg, _ = run("prepare", typed, **options)
    return Path(cfg.out).expanduser()


def train(typed: Any = None, /, run_dir: str | os.PathLike | None = None, **options) -> Path:
    """`audio-vq train`: returns the trained model directory (``<run_dir>/model``)."""
    _, folder = run("train", typed, run_dir=run_dir, **options)
    return folder / "model"


def train_prior(typed: Any = None, /, run_dir: str | os.PathLike | None = None, **options) -> Path:
    """`audio-vq train-prior`: returns the prior's directory (``<run_dir>/prior``)."""
    _, folder = run("train-prior", typed, run_dir=run_dir, **options)
    return folder / "prior"


def extract(typed: Any = None, /, **options) -> Path:
    """`audio-vq extract`: returns the unit file (``output``)."""
    cfg, _ = run("extract", typed, **options)
    return Path(cfg.output).expanduser()


def units_convert(typed: Any = None, /, **options) -> Path:
    """`audio-vq units-convert`: returns the converted unit file (``output``)."""
    cfg, _ = run("units-convert", typed, **options)
    return Path(cfg.output).expanduser()


def _out(command: str, typed: Any = None, /, **options) -> Path:
    cfg, _ = run(command, typed, **options)
    return Path(cfg.out).expanduser()


def reconstruct(typed: Any = None, /, **options) -> Path:
    """`audio-vq reconstruct`: returns the output folder (``out``). In memory: :meth:`Codec.reconstruct`."""
    return _out("reconstruct", typed, **options)


def convert(typed: Any = None, /, **options) -> Path:
    """`audio-vq convert`: returns the output folder (``out``). In memory: :meth:`Codec.convert`."""
    return _out("convert", typed, **options)


def synthesize(typed: Any = None, /, **options) -> Path:
    """`audio-vq synthesize`: returns the output folder (``out``). In memory: :meth:`Codec.synthesize`."""
    return _out("synthesize", typed, **options)


def sample(typed: Any = None, /, **options) -> Path:
    """`audio-vq sample`: returns the output folder (``out``)."""
    return _out("sample", typed, **options)


def evaluate(typed: Any = None, /, **options) -> Path:
    """`audio-vq evaluate`: returns the report folder (``out``: report.json, report.md, plots)."""
    return _out("evaluate", typed, **options)


def evaluate_prior(typed: Any = None, /, **options) -> Path:
    """`audio-vq evaluate-prior`: returns the report folder (``out``)."""
    return _out("evaluate-prior", typed, **options)


def export_listening_test(typed: Any = None, /, **options) -> Path:
    """`audio-vq export-listening-test`: returns the test's folder (``out``)."""
    return _out("export-listening-test", typed, **options)


def listening_results(typed: Any = None, /, **options) -> Path:
    """`audio-vq listening-results`: returns the results folder (``out``, by default beside the results)."""
    from .stages.listening.analysis import output_folder

    cfg, _ = run("listening-results", typed, **options)
    return output_folder(cfg)
