"""Sweeps and clusters through Hydra's own launchers: ``audio-vq <command> -m key=a,b ...``.

    audio-vq train -m train.lr=1e-3,2e-3 hydra.sweep.dir=runs/lr     # runs/lr/0, runs/lr/1: a run folder per job
    audio-vq train-prior -m units=u.txt prior=tiny,base hydra/launcher=submitit_slurm
    audio-vq extract -m model=m input=data output=units.txt num_shards=64 hydra/launcher=submitit_slurm
                                                          # an array job, a shard per task; then the merge

Hydra's multirun expands the sweep (its basic sweeper) and its launcher runs the jobs: one
after another in this process (the basic launcher), or through hydra-submitit-launcher (the
``slurm`` extra: ``hydra/launcher=submitit_slurm``, or ``submitit_local`` for the same code path
on this machine). Every job's config is composed and checked here first, so a bad value of any
job is one line before anything runs. train and train-prior jobs train into
``<hydra.sweep.dir>/<job number>``; extract's jobs are its shards (``shard=0..num_shards-1``),
and the merge runs once they are all done.
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

from .commands import COMMANDS, compose_command, execute
from .config import HYDRA_VERSION_BASE, ConfigError, optional_import

MULTIRUN_FLAGS = ("-m", "--multirun")
SWEEPS = ("train", "train-prior", "extract")
# Hydra writes neither its .hydra/ folder nor a log file into a job's run folder (training
# refuses a folder holding files that are not a run's) and leaves the command's logging as it is
QUIET = ("hydra.output_subdir=null", "hydra/job_logging=none", "hydra/hydra_logging=none")


def multirun(name: str, overrides: list[str]) -> int:
    """Run command ``name`` as a Hydra multirun of ``overrides`` (sweep syntax); its exit status."""
    if name not in SWEEPS:
        raise ConfigError(f"-m: {name} does not sweep (sweeps: {', '.join(SWEEPS)})")
    _check_launcher(overrides)
    if name == "extract":
        overrides = _shards(overrides)
    jobs = expand(overrides)
    for job in jobs:  # every job's values checked before any runs
        compose_command(name, [o for o in job if not _is_launcher(o)])
    _launch(name, COMMANDS[name], overrides)  # a failed job ends the process with its status
    if name == "extract":  # the shards are done: merge them
        plain = [o for o in jobs[0] if not _is_launcher(o) and not o.startswith("shard=")]
        return execute(name, *compose_command(name, [*plain, "merge=true"]))
    return 0


def expand(overrides: list[str]) -> list[list[str]]:
    """The overrides of each job of a sweep (its cartesian product, as Hydra's basic sweeper)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException as e:
        raise ConfigError(f"cannot parse override: {' '.join(str(e).split())}") from None
    choices = []
    for o in parsed:
        key = o.get_key_element()
        values = list(o.sweep_string_iterator()) if o.is_sweep_override() else [o.get_value_element_as_str()]
        choices.append([f"{key}={v}" for v in values])
    return [list(job) for job in itertools.product(*choices)]


def _shards(overrides: list[str]) -> list[str]:
    """extract's jobs: a shard each (``shard=range(num_shards)``), of ``num_shards`` given once."""
    given = {o.partition("=")[0].strip(): o.partition("=")[2].strip() for o in overrides}
    if "shard" in given or "merge" in given:
        raise ConfigError("extract -m: give num_shards=N; the sweep makes shard=0..N-1 and merges after")
    try:
        n = int(given.get("num_shards", ""))
    except ValueError:
        raise ConfigError(f"extract -m: num_shards={given.get('num_shards')!r}: expected an integer >= 2") from None
    if n < 2:
        raise ConfigError(f"extract -m: num_shards={n}: expected an integer >= 2 (one shard per job)")
    return [*overrides, f"shard=range(0,{n})"]


def _check_launcher(overrides: list[str]) -> None:
    """A submitit launcher named without its plugin installed: one line naming the extra."""
    for o in overrides:
        key, _, value = o.partition("=")
        if key.strip() == "hydra/launcher" and value.strip().startswith("submitit"):
            optional_import("hydra_plugins.hydra_submitit_launcher", "slurm", o.strip())


def _is_launcher(override: str) -> bool:
    return override.startswith(("hydra/", "hydra.", "+hydra"))


def _launch(name: str, command, overrides: list[str]) -> None:
    """Hydra's own entry point (``hydra.main``) in multirun mode, with this job function."""
    import hydra

    argv, sys.argv = sys.argv, [f"audio-vq {name}", "-m", *overrides, *QUIET]
    try:
        hydra.main(
            config_path=f"pkg://{command.package}",
            config_name=command.config_name(name),
            version_base=HYDRA_VERSION_BASE,
        )(Job(name))()
    finally:
        sys.argv = argv


class Job:
    """One job of a sweep, as the launcher runs it (here, or pickled into a SLURM task): the
    job's overrides checked as the command line's are, then the command, in the job's folder."""

    def __init__(self, name: str):
        self.name = name

    def __call__(self, cfg) -> int:
        from hydra.core.hydra_config import HydraConfig

        from . import cli
        from .config import checked
        from .options import check_overrides

        runtime = HydraConfig.get()
        folder = str(Path(runtime.runtime.output_dir))

        def run() -> int:
            check_overrides(cfg, [o for o in runtime.overrides.task if not _is_launcher(o)])
            checked(cfg)
            return execute(self.name, cfg, folder if COMMANDS[self.name].makes_run else None)

        status = cli.report(self.name, run)
        if status:
            raise SystemExit(status)  # the job failed: its launcher reports it, and the sweep stops
        return status
