"""The commands: a table of name -> (packaged Hydra config, stage function), and running one.

Both faces of the toolkit go through here: the `audio-vq` command line (cli.py: argv, help,
exit statuses) and the Python API (api.py: keyword arguments, exceptions). A command's
function is imported only when it runs, so listing the commands stays instant.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from typing import Callable, Sequence


@dataclass(frozen=True)
class Command:
    summary: str
    run: str  # "module:function" taking the composed config; imported only when the command runs
    groups: tuple[str, ...] = ()  # config groups whose options --help lists
    example: str = ""
    makes_run: bool = False  # the function also takes the run folder (hydra.run.dir)
    package: str = "audio_vq.configs"  # where its config lives (see configs/inference/__init__.py)
    shared: str | None = None  # a config its own one extends (decode.yaml), whose keys --help lists too

    def config_name(self, name: str) -> str:
        return name.replace("-", "_")  # export-listening-test -> export_listening_test.yaml


INFERENCE = "audio_vq.configs.inference"


COMMANDS: dict[str, Command] = {
    "prepare": Command(
        "scan a dataset, validate every file, split it and write manifest.jsonl + speakers.json",
        "audio_vq.stages.prepare:main",
        groups=("corpus",),
        example="audio-vq prepare corpus=synthetic root=data/synthetic out=data/demo",
    ),
    "train": Command(
        "train the VQ-VAE; with no arguments, model=small on the embedded synthetic corpus",
        "audio_vq.commands:train",
        groups=("model", "model/quantizer", "data", "train"),
        example="audio-vq train data.manifest=exp/vctk/data model=paper train.batch_size=16 hydra.run.dir=runs/vctk",
        makes_run=True,
    ),
    "train-prior": Command(
        "train a prior over units (a decoder-only Transformer) on a unit file: <run>/prior/",
        "audio_vq.stages.train_prior:main",
        groups=("prior", "train"),
        example="audio-vq train-prior units=exp/demo/units/units.txt manifest=exp/demo/data hydra.run.dir=runs/prior",
        makes_run=True,
    ),
    "sample": Command(
        "speech from a prior over units (or continuations of prompts), rendered by the VQ-VAE: "
        "<out>/<name>.wav + units",
        "audio_vq.stages.sample:sample",
        example="audio-vq sample prior=runs/prior/prior model=runs/demo/model speaker=spk03 out=exp/samples "
        "num_samples=4",
        package=INFERENCE,
        shared="decode",
    ),
    "reconstruct": Command(
        "encode audio and decode it with its own speaker: <out>/<id>.wav",
        "audio_vq.stages.decode:reconstruct",
        example="audio-vq reconstruct model=runs/demo/model input=exp/demo/data out=exp/demo/reconstructed",
        package=INFERENCE,
        shared="decode",
    ),
    "convert": Command(
        "voice conversion: decode each input's codes with target speakers; <out>/<id>__<target>.wav + index.csv",
        "audio_vq.stages.decode:convert",
        example="audio-vq convert model=runs/demo/model input=speech.wav target_speaker=spk01,spk05 out=exp/converted",
        package=INFERENCE,
        shared="decode",
    ),
    "synthesize": Command(
        "units to speech with one speaker: <out>/<id>.wav",
        "audio_vq.stages.decode:synthesize",
        example="audio-vq synthesize model=runs/demo/model units=units.txt speaker=spk03 out=exp/synth",
        package=INFERENCE,
        shared="decode",
    ),
    "extract": Command(
        "discrete units of every input: gslm | textless | jsonl | npz | zerospeech | parquet | lhotse, "
        "+ <output>.meta.json",
        "audio_vq.stages.extract:extract",
        example="audio-vq extract model=runs/demo/model input=exp/demo/data output=exp/demo/units.txt format=gslm",
        package=INFERENCE,
    ),
    "units-convert": Command(
        "convert a unit file between formats (the input's format is detected)",
        "audio_vq.stages.extract:units_convert",
        example="audio-vq units-convert input=exp/demo/units.txt output=exp/demo/units.jsonl format=jsonl",
        package=INFERENCE,
    ),
    "evaluate": Command(
        "report on a model: codebook health, bitrate, phonetic quality vs baselines, ABX, reconstruction, conversion",
        "audio_vq.stages.evaluate.report:evaluate",
        example="audio-vq evaluate model=runs/demo/model data=exp/demo/data out=exp/demo/eval",
        package=INFERENCE,
        shared="decode",
    ),
    "evaluate-prior": Command(
        "score a prior on held-out units beside n-gram baselines; real vs reversed; sample statistics",
        "audio_vq.stages.evaluate.prior_report:evaluate_prior",
        example="audio-vq evaluate-prior prior=runs/prior/prior out=exp/demo/prior_eval",
        package=INFERENCE,
    ),
    "export-listening-test": Command(
        "a self-contained listening test (MUSHRA, AB, ABX, MOS): stimuli, key, webMUSHRA/BeaqleJS configs, HTML",
        "audio_vq.stages.listening:export",
        example="audio-vq export-listening-test model=runs/demo/model data=exp/demo/data kind=mushra "
        "out=exp/demo/mushra",
        package=INFERENCE,
        shared="decode",
    ),
    "listening-results": Command(
        "de-anonymise webMUSHRA or BeaqleJS results with the key, post-screen listeners, mean and 95% CI per "
        "system, plot",
        "audio_vq.stages.listening:results",
        example="audio-vq listening-results results=mushra.csv key=exp/demo/mushra/key.csv out=exp/demo/mushra/results",
        package=INFERENCE,
    ),
}
SYNTHETIC_CACHE_ENV = "AUDIO_VQ_CACHE"
DEFAULT_CACHE = "~/.cache/audio_vq"


def train(cfg, run_folder: str) -> int:
    """`audio-vq train`: the synthetic corpus is prepared first when no manifest is given."""
    from .distributed import setup
    from .stages import train as stage

    ctx = setup(cfg.device)
    if cfg.data.manifest is None:
        cfg.data.manifest = _default_manifest(cfg.data.synthetic_dir, ctx)
    return stage.main(cfg, run_folder, ctx)


def _default_manifest(synthetic_dir: str | None, ctx) -> str:
    """The embedded synthetic corpus's manifest, generated and prepared on first use (by
    rank 0 under torchrun, the others waiting)."""
    from pathlib import Path

    from .config import compose
    from .stages import prepare

    root = Path(synthetic_dir or Path(os.environ.get(SYNTHETIC_CACHE_ENV, DEFAULT_CACHE)) / "synthetic").expanduser()
    manifest = root / "data" / "manifest.jsonl"
    if ctx.primary and not manifest.exists():
        prepare.run(compose("prepare", ["corpus=synthetic", f"root={root / 'corpus'}", f"out={root / 'data'}"]))
    ctx.barrier()
    return str(manifest)


def compose_command(name: str, overrides: Sequence[str] = ()) -> tuple:
    """(the command's composed config, its run folder or None) for ``key=value`` overrides;
    ConfigError for an unknown key, a value of the wrong type or, for a command with typed
    options (options.py), a value out of its range."""
    from .config import compose, compose_run

    command = COMMANDS[name]
    if command.makes_run:
        return compose_run(command.config_name(name), overrides)
    return compose(command.config_name(name), overrides, package=command.package), None


def execute(name: str, cfg, folder: str | None = None) -> int:
    """Run command ``name`` on its composed config (and run folder); its exit status (0: done)."""
    command = COMMANDS[name]
    run = _resolve(command.run)
    return (run(cfg, folder) if command.makes_run else run(cfg)) or 0


def _resolve(target: str) -> Callable:
    module, _, function = target.partition(":")
    return getattr(importlib.import_module(module), function)
