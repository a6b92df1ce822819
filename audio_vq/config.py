"""Compose a command's Hydra config from the packaged configs and `key=value` overrides.

Every failure is a :class:`ConfigError` with a one-line message naming the key: an unknown key,
an unparsable override, a missing required key (``???``) or a value out of range.
"""

from __future__ import annotations

import math
from importlib import resources
from typing import Any, Callable, Mapping, Sequence

from omegaconf import DictConfig, OmegaConf, open_dict

CONFIG_PACKAGE = "audio_vq.configs"
HYDRA_VERSION_BASE = "1.3"


class ConfigError(ValueError):
    """A bad command-line override or config value; the message names the key."""


def compose(config_name: str, overrides: Sequence[str] = (), package: str = CONFIG_PACKAGE) -> DictConfig:
    """The config ``<package>/<config_name>.yaml`` with ``overrides`` applied.

    Raises ConfigError for unknown keys, malformed overrides, missing required keys and, for a
    command with typed options (options.py), values out of range."""
    return checked(_compose(config_name, overrides, with_hydra=False, package=package))


def compose_run(config_name: str, overrides: Sequence[str] = ()) -> tuple[DictConfig, str]:
    """Like :func:`compose` for a command that makes a run folder: also returns
    ``hydra.run.dir`` resolved (its ``${now:...}`` is the time of this call). Hydra's own node
    is dropped from the config, so what remains is the run's config."""
    cfg = _compose(config_name, overrides, with_hydra=True, package=CONFIG_PACKAGE)
    folder = OmegaConf.select(cfg, "hydra.run.dir")
    if folder is None or not str(folder).strip():
        raise ConfigError(f"hydra.run.dir={folder!r}: expected a run folder")
    folder = str(folder)
    with open_dict(cfg):
        del cfg["hydra"]
    return checked(cfg), folder


def _compose(config_name: str, overrides: Sequence[str], with_hydra: bool, package: str) -> DictConfig:
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from . import options

    options.register()  # the typed options the presets extend

    for o in overrides:
        if "=" not in o or not o.partition("=")[0].strip():
            raise ConfigError(f"'{o}': expected key=value")
    overrides = [_comma_list(o) for o in overrides]
    values = [o for o in overrides if not _is_group(_key(o), package)]
    with initialize_config_module(package, version_base=HYDRA_VERSION_BASE):
        try:
            cfg = hydra_compose(config_name=config_name, overrides=overrides, return_hydra_config=with_hydra)
        except (HydraException, OmegaConfBaseException) as e:
            message = _hydra_message(e, package)
            # a value Hydra refused (abc for an integer): its field's own one-line error, found
            # in the config the group choices alone compose (a second composition, on failure only)
            try:
                base = hydra_compose(
                    config_name=config_name,
                    overrides=[o for o in overrides if o not in values],
                    return_hydra_config=with_hydra,
                )
            except (HydraException, OmegaConfBaseException):
                raise ConfigError(message) from None
            options.check_overrides(base, values)
            raise ConfigError(message) from None
    options.check_overrides(cfg, values)
    return cfg


def _key(override: str) -> str:
    return override.partition("=")[0].strip().lstrip("+~")


def _comma_list(override: str) -> str:
    """``key=a,b,c`` -> ``key=[a,b,c]``. Hydra reads a bare comma list as a multirun sweep,
    which these commands do not run; the CLI contract (e.g. target_speaker=a,b) means a list."""
    key, _, value = override.partition("=")
    if "," in value and value[:1] not in "[{'\"" and "(" not in value:
        return f"{key}=[{value}]"
    return override


def checked(cfg: DictConfig) -> DictConfig:
    """``cfg`` with every required key given and every value in range."""
    from .options import validate

    validate(_check_missing(cfg))
    return cfg


def _check_missing(cfg: DictConfig) -> DictConfig:
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        keys = ", ".join(f"{k}=..." for k in missing)
        raise ConfigError(f"missing required key{'s' if len(missing) > 1 else ''}: {keys}")
    return cfg


def require(cfg: DictConfig, key: str, ok: Callable[[Any], bool], expected: str) -> Any:
    """``cfg[key]`` (dotted) if ``ok(value)``; else ConfigError naming the key and what was expected."""
    value = OmegaConf.select(cfg, key)
    try:
        good = ok(value)
    except (TypeError, ValueError):
        good = False
    if not good:
        raise ConfigError(f"{key}={value!r}: expected {expected}")
    return value


def resolve_device(device: str, local_rank: int = 0):
    """A ``device`` key (auto | cpu | cuda | cuda:N) as a torch.device: auto is CUDA when
    available; bare cuda is the process's local rank. ConfigError for a bad or missing device."""
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if not (device in ("cpu", "cuda") or str(device).startswith("cuda:")):
        raise ConfigError(f"device={device!r}: expected auto, cpu, cuda or cuda:N")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={device}: CUDA is not available on this machine")
    return torch.device(f"cuda:{local_rank}" if device == "cuda" else device)


def optional_import(module: str, extra: str, user: str, error: type[Exception] = ConfigError):
    """``module`` (an optional package's), or ``error`` in one line: ``<user> needs <module>: pip
    install 'audio_vq[<extra>]'``. Every adapter of an optional extra imports through here."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise error(f"{user} needs {module}: pip install 'audio_vq[{extra}]'") from None


def is_number(v: Any) -> bool:
    """A finite int or float (not a bool, not inf or nan)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def config_text(name: str, package: str = CONFIG_PACKAGE) -> str:
    """The packaged YAML of ``<package>/<name>.yaml`` (comments included), for --help."""
    return resources.files(package).joinpath(f"{name}.yaml").read_text(encoding="utf-8")


def group_options(group: str, package: str = CONFIG_PACKAGE) -> list[str]:
    """The options of config group ``group`` (file names under <package>/<group>/)."""
    folder = resources.files(package).joinpath(group)
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def _hydra_message(e: Exception, package: str = CONFIG_PACKAGE) -> str:
    """Hydra's multi-line messages, cut to one line that says what is wrong and with which key."""
    from hydra.errors import MissingConfigException, OverrideParseException

    lines = [line.strip() for line in str(e).splitlines() if line.strip()] or [type(e).__name__]
    quoted = lines[0].split("'")[1] if lines[0].count("'") >= 2 else None
    if lines[0].startswith("Could not override") and quoted:
        if any("+" + quoted in line for line in lines[1:]):
            return f"unknown key '{quoted}'"
        return f"bad value for '{quoted}': {' '.join(lines[1:])}"
    if "You must specify" in lines[0] and quoted:
        return f"missing required key '{quoted}' (options: {', '.join(group_options(quoted, package))})"
    if isinstance(e, MissingConfigException) and "Could not find" in lines[0]:
        missing = lines[0].split("Could not find ")[1].strip("'")
        group, _, option = missing.rpartition("/")
        if group and _is_group(group, package):
            return f"{group}={option}: no such option (options: {', '.join(group_options(group, package))})"
        return f"config '{missing}' not found"
    if isinstance(e, OverrideParseException):
        return f"cannot parse override: {lines[0]}"
    return " ".join(lines)


def _is_group(name: str, package: str = CONFIG_PACKAGE) -> bool:
    return resources.files(package).joinpath(name).is_dir()


def flatten(tree: Mapping, prefix: str = "") -> dict[str, Any]:
    """A nested mapping's leaves under dotted keys ({"a": {"b": 1}} -> {"a.b": 1})."""
    out: dict[str, Any] = {}
    for k, v in tree.items():
        if isinstance(v, Mapping):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out
