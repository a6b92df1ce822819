"""The model directory (what training leaves and every later stage loads) and training state.

Model directory::

    model.safetensors   the VQVAE's state dict (parameters and buffers), safetensors: no pickle
    config.yaml         the full resolved config of the run that made it
    speakers.json       speaker -> index of the speaker table
    checksum.sha256     sha256 of the three files above (sha256sum format), written last

Training state (``<run>/checkpoints/step_XXXXXXXX.pt``) holds what an exact resume needs and
lives apart from the model directory; it is read with ``torch.load(weights_only=True)``, so it
holds only tensors and plain containers.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf
from safetensors.torch import load_file, save_file

from .atomic import atomic_path, atomic_write_text
from .audio import SAMPLE_RATE
from .manifest import SPEAKERS_NAME, ManifestError, read_speakers
from .models.vqvae import VQVAE

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.yaml"
CHECKSUM_NAME = "checksum.sha256"
CHECKPOINT_PATTERN = "step_*.pt"
HASH_CHUNK = 1 << 20


class ModelDirError(ValueError):
    """A model directory that is missing a file, fails its checksum or does not fit its config."""


def save_model_dir(
    model: torch.nn.Module, config: dict, speakers: dict[str, int], directory: str | os.PathLike
) -> Path:
    """Write a model directory (a VQ-VAE's, a prior's) atomically file by file; the checksum
    goes last, so a directory whose checksum matches is complete."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / CHECKSUM_NAME).unlink(missing_ok=True)  # incomplete until rewritten
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(directory / WEIGHTS_NAME) as tmp:
        save_file(state, tmp)
    atomic_write_text(directory / CONFIG_NAME, OmegaConf.to_yaml(OmegaConf.create(config)))
    atomic_write_text(directory / SPEAKERS_NAME, json.dumps(speakers, indent=1, ensure_ascii=False) + "\n")
    lines = "".join(f"{_sha256(directory / name)}  {name}\n" for name in (WEIGHTS_NAME, CONFIG_NAME, SPEAKERS_NAME))
    atomic_write_text(directory / CHECKSUM_NAME, lines)
    return directory


def model_checksum(directory: str | os.PathLike) -> str:
    """The weights' sha256 as recorded in the directory (what unit files cite)."""
    return _recorded(Path(directory))[WEIGHTS_NAME]


def load_weights_dir(directory: str | os.PathLike, section: str) -> tuple[dict, dict[str, int], dict]:
    """(config, speakers, weights) of a model directory, the checksum verified, the weights
    finite, the config holding ``section`` (``model`` for a VQ-VAE, ``prior`` for a prior)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ModelDirError(f"{directory}: model directory not found")
    recorded = _recorded(directory)
    for name, digest in recorded.items():
        if _sha256(directory / name) != digest:
            raise ModelDirError(f"{directory / name}: checksum mismatch (file changed or corrupt)")
    config = _read_config(directory / CONFIG_NAME, section)
    try:
        speakers = read_speakers(directory / SPEAKERS_NAME)
    except ManifestError as e:
        raise ModelDirError(str(e)) from None
    try:
        weights = load_file(str(directory / WEIGHTS_NAME))
    except Exception as e:  # safetensors raises its own error types for a corrupt header or body
        raise ModelDirError(f"{directory / WEIGHTS_NAME}: not a readable safetensors file ({_one_line(e)})") from None
    bad = [k for k, t in weights.items() if t.is_floating_point() and not torch.isfinite(t).all()]
    if bad:
        raise ModelDirError(
            f"{directory / WEIGHTS_NAME}: {len(bad)} tensor(s) hold NaN or inf, e.g. {bad[0]} "
            "(the training diverged); use an earlier checkpoint"
        )
    return config, speakers, weights


def load_model(directory: str | os.PathLike, device: str | torch.device = "cpu") -> VQVAE:
    """The VQVAE of a model directory, in eval mode, with ``speaker_index`` (speaker -> index)
    and ``config`` (the run's config as a dict) set. Verifies the checksum first."""
    directory = Path(directory)
    config, speakers, weights = load_weights_dir(directory, "model")
    try:
        model = VQVAE.from_config(
            config["model"],
            num_speakers=len(speakers),
            sample_rate=int((config.get("data") or {}).get("sample_rate", SAMPLE_RATE)),
        )
    except (TypeError, ValueError, KeyError) as e:
        raise ModelDirError(f"{directory / CONFIG_NAME}: not a model this version builds ({_one_line(e)})") from None
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as e:
        raise ModelDirError(f"{directory / WEIGHTS_NAME}: does not fit config.yaml ({_one_line(e)})") from None
    model.speaker_index = speakers
    model.config = config
    model.directory = directory
    return model.to(device).eval()


def load_prior(directory: str | os.PathLike, device: str | torch.device = "cpu"):
    """(UnitPrior in eval mode, the prior directory's config, its speakers) of ``<run>/prior``."""
    from .models.prior import UnitPrior

    directory = Path(directory)
    config, speakers, weights = load_weights_dir(directory, "prior")
    try:
        prior = UnitPrior(**config["prior"])
        prior.load_state_dict(weights, strict=True)
    except (TypeError, ValueError, RuntimeError) as e:
        raise ModelDirError(f"{directory}: not a prior this version builds ({_one_line(e)})") from None
    return prior.to(device).eval(), config, speakers


def save_training_state(state: dict[str, Any], directory: str | os.PathLike, step: int, keep: int) -> Path:
    """Write ``step_XXXXXXXX.pt`` atomically and delete all but the newest ``keep``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"step_{step:08d}.pt"
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    for old in sorted(directory.glob(CHECKPOINT_PATTERN))[:-keep]:
        old.unlink(missing_ok=True)
    return path


def load_latest_training_state(directory: str | os.PathLike, log=None) -> tuple[dict[str, Any], Path] | None:
    """The newest readable checkpoint in ``directory`` and its path; an unreadable one (cut
    off by a crash or a full disk) is reported through ``log`` and the previous one tried."""
    for path in sorted(Path(directory).glob(CHECKPOINT_PATTERN), reverse=True):
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            if not isinstance(state, dict) or "step" not in state:
                raise ValueError("not a training state")
            return state, path
        except Exception as e:  # truncated zip, bad pickle opcodes, ...
            if log is not None:
                log.warning(
                    "checkpoint %s is unreadable (%s); trying the previous one", path, " ".join(str(e).split())[:200]
                )
    return None


def _read_config(path: Path, section: str) -> dict:
    try:
        config = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    except Exception as e:  # YAML syntax, unknown tags, interpolation errors: never executes anything
        raise ModelDirError(f"{path}: not a readable config ({_one_line(e)})") from None
    if not isinstance(config, dict) or not isinstance(config.get(section), dict):
        other = "a prior's" if section == "model" and isinstance(config, dict) and "prior" in config else "a"
        raise ModelDirError(f"{path}: has no {section} section (is this {other} directory of another kind?)")
    return config


def _one_line(e: Exception) -> str:
    return " ".join(str(e).split())[:300]


def _recorded(directory: Path) -> dict[str, str]:
    path = directory / CHECKSUM_NAME
    if not path.exists():
        raise ModelDirError(f"{path}: missing (the model directory is incomplete)")
    recorded = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        digest, _, name = line.partition("  ")
        recorded[name.strip()] = digest.strip()
    for name in (WEIGHTS_NAME, CONFIG_NAME, SPEAKERS_NAME):
        if name not in recorded:
            raise ModelDirError(f"{path}: no checksum for {name}")
        if not (directory / name).exists():
            raise ModelDirError(f"{directory / name}: missing")
    return recorded


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(HASH_CHUNK), b""):
            h.update(block)
    return h.hexdigest()
