"""The `audio-vq` command: ``audio-vq <command> key=value ...`` (Hydra-style overrides).

Each command is a packaged Hydra config (``configs/<command>.yaml``) and a function taking the
composed config. ``audio-vq --help`` lists the commands; ``audio-vq <command> --help`` prints
the command's keys with their defaults and comments and the options of its config groups.
User errors (bad keys or values, unusable datasets) print one line and exit with status 2; a
training run stopped by a preemption signal checkpoints and exits with status 75
(preemption.EXIT_PREEMPTED); running out of memory is one line and status 1.
"""
from __future__ import annotations

import importlib
import logging
import os
import sys
from dataclasses import dataclass
from typing import Callable, Sequence

from . import __version__

PROG = "audio-vq"
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


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
        "audio_vq.cli:train",
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
        "speech from a prior over units (or continuations of prompts), rendered by the VQ-VAE: <out>/<name>.wav + units",
        "audio_vq.stages.sample:sample",
        example="audio-vq sample prior=runs/prior/prior model=runs/demo/model speaker=spk03 out=exp/samples num_samples=4",
        package=INFERENCE, shared="decode",
    ),
    "reconstruct": Command(
        "encode audio and decode it with its own speaker: <out>/<id>.wav",
        "audio_vq.stages.decode:reconstruct",
        example="audio-vq reconstruct model=runs/demo/model input=exp/demo/data out=exp/demo/reconstructed",
        package=INFERENCE, shared="decode",
    ),
    "convert": Command(
        "voice conversion: decode each input's codes with target speakers; <out>/<id>__<target>.wav + index.csv",
        "audio_vq.stages.decode:convert",
        example="audio-vq convert model=runs/demo/model input=speech.wav target_speaker=spk01,spk05 out=exp/converted",
        package=INFERENCE, shared="decode",
    ),
    "synthesize": Command(
        "units to speech with one speaker: <out>/<id>.wav",
        "audio_vq.stages.decode:synthesize",
        example="audio-vq synthesize model=runs/demo/model units=units.txt speaker=spk03 out=exp/synth",
        package=INFERENCE, shared="decode",
    ),
    "extract": Command(
        "discrete units of every input: gslm | textless | jsonl | npz | zerospeech, + <output>.meta.json",
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
        package=INFERENCE, shared="decode",
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
        example="audio-vq export-listening-test model=runs/demo/model data=exp/demo/data kind=mushra out=exp/demo/mushra",
        package=INFERENCE, shared="decode",
    ),
    "listening-results": Command(
        "de-anonymise webMUSHRA or BeaqleJS results with the key, post-screen listeners, mean and 95% CI per system, plot",
        "audio_vq.stages.listening:results",
        example="audio-vq listening-results results=mushra.csv key=exp/demo/mushra/key.csv out=exp/demo/mushra/results",
        package=INFERENCE,
    ),
}
SYNTHETIC_CACHE_ENV = "AUDIO_VQ_CACHE"
DEFAULT_CACHE = "~/.cache/audio_vq"


def train(cfg, run_folder: str) -> int:
    """`audio-vq train`: the synthetic corpus is prepared first when no manifest is given."""
    from .stages import train as stage

    ctx = stage.setup(cfg.device)
    if cfg.data.manifest is None:
        cfg.data.manifest = _default_manifest(cfg.data.synthetic_dir, ctx)
    return stage.main(cfg, run_folder, ctx)


def _default_manifest(synthetic_dir: str | None, ctx) -> str:
    """The embedded synthetic corpus's manifest, generated and prepared on first use (by
    rank 0 under torchrun, the others waiting)."""
    from pathlib import Path

    from .stages import prepare
    from .config import compose

    root = Path(synthetic_dir or Path(os.environ.get(SYNTHETIC_CACHE_ENV, DEFAULT_CACHE)) / "synthetic").expanduser()
    manifest = root / "data" / "manifest.jsonl"
    if ctx.primary and not manifest.exists():
        prepare.run(compose("prepare", ["corpus=synthetic", f"root={root / 'corpus'}", f"out={root / 'data'}"]))
    ctx.barrier()
    return str(manifest)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0 if argv else EXIT_USAGE
    if argv[0] in ("-V", "--version"):
        print(f"{PROG} {__version__}")
        return 0
    name, overrides = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"{PROG}: error: unknown command '{name}' (commands: {', '.join(COMMANDS)})", file=sys.stderr)
        return EXIT_USAGE
    command = COMMANDS[name]
    if any(a in ("-h", "--help") for a in overrides):
        print(_command_help(name, command))
        return 0
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return _run(name, command, overrides)


def _run(name: str, command: Command, overrides: list[str]) -> int:
    from .audio import AudioError
    from .checkpoint import ModelDirError
    from .config import ConfigError, compose, compose_run
    from .corpora import CorpusError
    from .manifest import ManifestError
    from .outputs import OutputError
    from .preemption import EXIT_PREEMPTED
    from .trainer import Preempted, TrainingError

    try:
        if command.makes_run:
            cfg, folder = compose_run(command.config_name(name), overrides)
            return _resolve(command.run)(cfg, folder) or 0
        return _resolve(command.run)(compose(command.config_name(name), overrides, package=command.package)) or 0
    except (ConfigError, CorpusError, ManifestError, AudioError, ModelDirError, OutputError) as e:
        print(f"{PROG} {name}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as e:  # a full disk, a read-only or vanished folder: the file and the reason
        print(f"{PROG} {name}: error: {_one_line(e)}", file=sys.stderr)
        return EXIT_USAGE
    except TrainingError as e:
        print(f"{PROG} {name}: {e}", file=sys.stderr)
        return EXIT_FAILED
    except Preempted as e:
        print(f"{PROG} {name}: {e}", file=sys.stderr)
        return EXIT_PREEMPTED
    except (MemoryError, RuntimeError) as e:  # torch's allocators raise RuntimeError (OutOfMemoryError)
        if not _out_of_memory(e):
            raise
        print(f"{PROG} {name}: error: out of memory ({_first_line(e)}); lower the batch size or the model's "
              "sizes", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(f"{PROG} {name}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


OUT_OF_MEMORY = ("can't allocate memory", "out of memory", "not enough memory")  # CPU, CUDA, MPS allocators


def _out_of_memory(e: BaseException) -> bool:
    return isinstance(e, MemoryError) or any(m in str(e).lower() for m in OUT_OF_MEMORY)


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return " ".join(lines[0].split())[:300] if lines else type(e).__name__


def _one_line(e: OSError) -> str:
    where = f"{e.filename}: " if e.filename else ""
    return where + " ".join((e.strerror or str(e)).split())


def _resolve(target: str) -> Callable:
    module, _, function = target.partition(":")
    return getattr(importlib.import_module(module), function)


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"usage: {PROG} <command> [key=value ...]", "", "commands:"]
    lines += [f"  {n:{width}s}  {c.summary}" for n, c in COMMANDS.items()]
    lines += ["", f"'{PROG} <command> --help' lists a command's keys and their defaults.",
              f"'{PROG} --version' prints the version."]
    return "\n".join(lines)


def _command_help(name: str, command: Command) -> str:
    from .config import config_text, group_options

    lines = [f"usage: {PROG} {name} [key=value ...]", "", command.summary]
    if command.example:
        lines += ["", "example:", f"  {command.example}"]
    folder = command.package.replace("audio_vq.", "").replace(".", "/")
    config = command.config_name(name)
    lines += ["", f"keys ({folder}/{config}.yaml; override any as key=value, nested as a.b=value):", ""]
    lines += ["  " + line for line in config_text(config, command.package).rstrip().splitlines()]
    if command.shared:
        lines += ["", f"shared keys ({command.shared}.yaml):", ""]
        lines += ["  " + line for line in config_text(command.shared, command.package).rstrip().splitlines()]
    for group in command.groups:
        for option in group_options(group, command.package):
            lines += ["", f"{group}={option}  (keys {group.replace('/', '.')}.<key>=value):", ""]
            lines += ["  " + line for line in config_text(f"{group}/{option}", command.package).rstrip().splitlines()]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
