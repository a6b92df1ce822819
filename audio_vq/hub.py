"""Models by name: a model directory (a VQ-VAE's or a prior's) saved, loaded and pushed through
huggingface_hub's ModelHubMixin (the ``hf`` extra), with a model card.

    import audio_vq
    audio_vq.save_pretrained("runs/demo/model", "export/demo")   # the directory + README.md model card
    model = audio_vq.from_pretrained("export/demo")               # a VQVAE (a prior directory: a UnitPrior)
    audio_vq.push_to_hub("runs/demo/model", "me/audio-vq-demo")   # the same files, uploaded

What travels is the model directory as training leaves it (model.safetensors, config.yaml,
speakers.json, checksum.sha256: safetensors only, the checksum verified on every load), plus
config.json (the same config, for the Hub's tooling) and README.md. ``from_pretrained`` takes a
local directory or a Hub repository id (downloaded by huggingface_hub into its cache; nothing
else in audio_vq reaches a network).
"""

from __future__ import annotations

import csv
import functools
import os
import shutil
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from .atomic import atomic_path
from .checkpoint import CHECKSUM_NAME, CONFIG_NAME, WEIGHTS_NAME, load_model, load_prior, load_weights_dir
from .config import ConfigError, optional_import
from .manifest import SPEAKERS_NAME

REPO_URL = "https://github.com/audio-vq/audio_vq"
FILES = (WEIGHTS_NAME, CONFIG_NAME, SPEAKERS_NAME, CHECKSUM_NAME)  # the checksum last: whole when it matches
METRICS_NAME = "metrics.csv"  # the run folder's, beside the model directory
TAGS = ["audio_vq", "vq-vae", "speech", "discrete-units", "audio"]

MODEL_CARD = """---
{{ card_data }}
---

# {{ title }}

{{ summary }}

Made with [audio_vq]({{ repo_url }}). Load it with:

```python
import audio_vq
{{ usage }}
```

## Configuration

```yaml
{{ config_yaml }}
```

## Training data

{{ data }}

## Metrics

{{ metrics }}
"""


def save_pretrained(
    model: Any, save_directory: str | os.PathLike, *, model_card_kwargs: dict | None = None, **push_kwargs
) -> Path:
    """Write ``model`` (a model or prior directory, or a VQVAE loaded from one) to
    ``save_directory`` with config.json and a model card (``model_card_kwargs``: the card's
    fields to replace, e.g. ``metrics``); ``push_to_hub=True, repo_id=...`` also uploads it."""
    save_directory = Path(save_directory).expanduser()
    handle = _handle(model)
    if save_directory.resolve() == handle.directory.resolve():
        raise ConfigError(f"{save_directory}: is the model directory itself; save to another folder")
    card = {**_card(handle), **(model_card_kwargs or {})}
    handle.save_pretrained(save_directory, config=handle.config, model_card_kwargs=card, **push_kwargs)
    return save_directory


def push_to_hub(model: Any, repo_id: str, *, model_card_kwargs: dict | None = None, **kwargs) -> str:
    """Upload ``model`` (as :func:`save_pretrained` writes it) to the Hub repository ``repo_id``;
    ``kwargs``: huggingface_hub's (private, token, branch, commit_message, ...). The commit's URL."""
    handle = _handle(model)
    card = {**_card(handle), **(model_card_kwargs or {})}
    return handle.push_to_hub(repo_id, config=handle.config, model_card_kwargs=card, **kwargs)


def from_pretrained(name_or_path: str | os.PathLike, device: str = "cpu", **hub_kwargs):
    """A VQVAE (or, for a prior directory, a UnitPrior with ``config`` and ``speaker_index``) from
    a local directory or a Hub repository id; ``hub_kwargs``: huggingface_hub's (revision,
    cache_dir, local_files_only, token, force_download)."""
    local = Path(name_or_path).expanduser()
    if local.is_dir():  # a local directory needs no huggingface_hub
        return _load(local, device)
    return _mixin().from_pretrained(str(name_or_path), device=device, **hub_kwargs)


def _load(directory: Path, device: str):
    if _section(directory) == "prior":
        prior, config, speakers = load_prior(directory, device)
        prior.config, prior.speaker_index = config, speakers
        return prior
    return load_model(directory, device)


def _handle(model: Any):
    """The mixin instance for a model directory, or for the directory a VQVAE was loaded from."""
    directory = getattr(model, "directory", None) or model
    if not isinstance(directory, (str, os.PathLike)):
        raise ConfigError(
            f"{type(model).__name__}: expected a model or prior directory (or a model loaded from one, "
            "whose directory it remembers)"
        )
    return _mixin()(Path(directory).expanduser())


@functools.cache
def _mixin() -> type:
    """The ModelHubMixin class, made on first use (huggingface_hub is an optional extra)."""
    ModelHubMixin = optional_import("huggingface_hub", "hf", "models by name").ModelHubMixin

    class Pretrained(
        ModelHubMixin, library_name="audio_vq", tags=TAGS, repo_url=REPO_URL, model_card_template=MODEL_CARD
    ):
        """A model directory as the Hub sees it: what it saves, how it loads."""

        def __init__(self, directory: Path):
            config, speakers, _ = load_weights_dir(directory, _section(directory))  # verified before it travels
            self.directory, self.config, self.speakers = directory, config, speakers
            self._hub_mixin_config = None  # config.json: the run's config, passed by save_pretrained

        def _save_pretrained(self, save_directory: Path) -> None:
            for name in FILES:  # each file atomically, the checksum last
                with atomic_path(save_directory / name) as tmp:
                    shutil.copyfile(self.directory / name, tmp)

        @classmethod
        def _from_pretrained(cls, *, model_id, revision, cache_dir, force_download, local_files_only, token, **kw):
            from huggingface_hub import snapshot_download

            folder = snapshot_download(
                repo_id=model_id,
                revision=revision,
                cache_dir=cache_dir,
                force_download=force_download,
                local_files_only=local_files_only,
                token=token,
                allow_patterns=list(FILES),
            )
            return _load(Path(folder), kw.get("device", "cpu"))

    return Pretrained


def _section(directory: Path) -> str:
    """What a directory holds, by its config.yaml: ``prior`` (a prior's) or ``model`` (a VQ-VAE's)."""
    config = OmegaConf.load(directory / CONFIG_NAME) if (directory / CONFIG_NAME).is_file() else {}
    return _kind(config)


def _kind(config) -> str:
    return "prior" if "prior" in config and "model" not in config else "model"


def _card(handle) -> dict:
    """The model card's fields of a verified directory (the mixin instance): what the model is,
    its config, its data and its metrics."""
    directory, config, speakers = handle.directory, handle.config, handle.speakers
    is_prior = _kind(config) == "prior"
    section = config["prior" if is_prior else "model"]
    if is_prior:
        units = config.get("units") or {}
        summary = (
            f"A prior over discrete speech units (a decoder-only Transformer, {section.get('layers')} layers of "
            f"width {section.get('dim')}), over K = {units.get('codebook_size')} units at "
            f"{units.get('frame_rate')} frames/s."
        )
        usage = 'prior = audio_vq.from_pretrained("<repo id or folder>")  # a UnitPrior'
        data = f"Units: `{units.get('source')}` ({len(speakers)} speakers)."
    else:
        quantizer = section.get("quantizer") or {}
        summary = (
            f"A VQ-VAE (van den Oord et al. 2017) that turns speech into discrete units: a "
            f"{quantizer.get('kind', 'vector')} quantizer of K = {quantizer.get('codebook_size')} codes and a "
            f"WaveNet decoder conditioned on {len(speakers)} speakers."
        )
        usage = (
            'model = audio_vq.from_pretrained("<repo id or folder>")  # a VQVAE\n'
            'codec = audio_vq.load("<folder>")  # audio <-> units, in memory'
        )
        run_data = config.get("data") or {}
        data = (
            f"Manifest: `{run_data.get('manifest')}`, at {run_data.get('sample_rate')} Hz. "
            f"Speakers ({len(speakers)}): {', '.join(sorted(speakers))}."
        )
    return {
        "title": f"audio_vq {'prior' if is_prior else 'VQ-VAE'}: {directory.name}",
        "summary": summary,
        "usage": usage,
        "config_yaml": OmegaConf.to_yaml(OmegaConf.create(config)).strip(),
        "data": data,
        "metrics": _metrics(directory.parent / METRICS_NAME, config),
    }


def _metrics(path: Path, config: dict) -> str:
    """The last validation row of the run's metrics.csv (the last training row without one), as a table."""
    step = config.get("exported_step")
    rows = []
    if path.is_file():
        with open(path, encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f))
    valid = [r for r in rows if r.get("split") == "valid"] or [r for r in rows if r.get("split") == "train"]
    if step is not None:
        valid = [r for r in valid if r.get("step") == str(step)] or valid
    if not valid:
        return "None recorded beside this directory (run `audio-vq evaluate` for the report)."
    last = valid[-1]
    cells = [(k, v) for k, v in last.items() if k not in ("split",) and v not in ("", None)]
    lines = ["| metric | value |", "|---|---|", *(f"| {k} | {v} |" for k, v in cells)]
    return f"From the run's `{METRICS_NAME}` ({last.get('split')} split):\n\n" + "\n".join(lines)
