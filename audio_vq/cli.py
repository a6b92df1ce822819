"""The `audio-vq` command: ``audio-vq <command> key=value ...`` (Hydra-style overrides).

Each command is a packaged Hydra config (``configs/<command>.yaml``) and a stage function taking
the composed config (the table is commands.py's, which the Python API runs too); this module
only reads argv, prints help and turns errors into exit statuses. ``audio-vq --help`` lists
the commands; ``audio-vq <command> --help`` prints the command's keys with their defaults and
comments and the options of its config groups.
User errors (bad keys or values, unusable datasets) print one line and exit with status 2; a
training run stopped by a preemption signal checkpoints and exits with status 75
(preemption.EXIT_PREEMPTED); running out of memory is one line and status 1.
"""

from __future__ import annotations

import logging
import sys
from typing import Sequence

from . import __version__
from .commands import COMMANDS, Command

PROG = "audio-vq"
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


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
    return _run(name, overrides)


def _run(name: str, overrides: list[str]) -> int:
    from .commands import compose_command, execute
    from .sweep import MULTIRUN_FLAGS, multirun

    if any(a in MULTIRUN_FLAGS for a in overrides):  # Hydra's multirun: a job per combination of values
        rest = [a for a in overrides if a not in MULTIRUN_FLAGS]
        return report(name, lambda: multirun(name, rest))
    return report(name, lambda: execute(name, *compose_command(name, overrides)))


def report(name: str, run) -> int:
    """``run()``'s exit status, and each error the user can act on as one line and a status."""
    from .audio import AudioError
    from .checkpoint import ModelDirError
    from .config import ConfigError
    from .corpora import CorpusError
    from .manifest import ManifestError
    from .outputs import OutputError
    from .preemption import EXIT_PREEMPTED
    from .trainer import Preempted, TrainingError

    try:
        return run()
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
        print(
            f"{PROG} {name}: error: out of memory ({_first_line(e)}); lower the batch size or the model's sizes",
            file=sys.stderr,
        )
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


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"usage: {PROG} <command> [-m] [key=value ...]", "", "commands:"]
    lines += [f"  {n:{width}s}  {c.summary}" for n, c in COMMANDS.items()]
    lines += [
        "",
        f"'{PROG} <command> --help' lists a command's keys and their defaults.",
        f"'{PROG} <command> -m key=a,b ...' sweeps (train, train-prior, extract; Hydra's multirun and launchers).",
        f"'{PROG} --version' prints the version.",
    ]
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
