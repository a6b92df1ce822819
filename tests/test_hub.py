"""Models by name: save_pretrained / from_pretrained / push_to_hub through huggingface_hub's
mixin, and the repository's hubconf.py through torch.hub (all on local folders: no network)."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import audio_vq
from audio_vq import hub
from audio_vq.checkpoint import load_model, load_prior
from audio_vq.config import ConfigError, compose_run
from audio_vq.stages import train_prior
from audio_vq.units.formats import Record, UnitsMeta, write_units

REPO = Path(__file__).resolve().parents[1]
PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".pkl", ".ckpt")


def model_dir(trained):
    return trained / "run" / "model"


def same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.fixture(scope="module")
def tiny_prior(tmp_path_factory):
    root = tmp_path_factory.mktemp("prior")
    rng = np.random.default_rng(0)
    records = [Record(f"u{i}", rng.integers(0, 16, 30)) for i in range(8)]
    write_units(root / "u.txt", records, UnitsMeta("gslm", 100.0, 16, 16000, "abc", False))
    keys = ["prior.dim=16", "prior.layers=1", "prior.heads=2", "prior.max_len=24", "train.batch_size=4"]
    cfg, folder = compose_run(
        "train_prior", [f"units={root / 'u.txt'}", f"hydra.run.dir={root / 'run'}", *keys, "train.max_steps=2"]
    )
    return train_prior.run(cfg, folder) / "prior"


def test_a_saved_model_is_its_directory_with_a_card_and_loads_back(tiny_trained, tmp_path):
    """Catches weights that do not round-trip, a pickle among the files, a card without the
    model's facts, config.json out of step with config.yaml."""
    out = audio_vq.save_pretrained(model_dir(tiny_trained), tmp_path / "export")
    names = sorted(p.name for p in out.iterdir())
    assert names == ["README.md", "checksum.sha256", "config.json", "config.yaml", "model.safetensors", "speakers.json"]
    assert not any(name.endswith(PICKLE_SUFFIXES) for name in names)
    assert json.loads((out / "config.json").read_text()) == yaml.safe_load((out / "config.yaml").read_text())
    card = (out / "README.md").read_text()
    assert "library_name: audio_vq" in card and "K = 16 codes" in card and "spk00, spk01, spk02, spk03" in card
    assert "| metric | value |" in card and "codebook_size: 16" in card
    loaded = audio_vq.from_pretrained(out)
    assert same_weights(loaded, load_model(model_dir(tiny_trained))) and loaded.speaker_index
    again = audio_vq.save_pretrained(loaded, tmp_path / "again")  # from the model it loaded: it knows its folder
    assert (again / "model.safetensors").read_bytes() == (out / "model.safetensors").read_bytes()


def test_a_prior_travels_the_same_way(tiny_prior, tmp_path):
    out = audio_vq.save_pretrained(tiny_prior, tmp_path / "export")
    assert "audio_vq prior" in (out / "README.md").read_text()
    loaded = audio_vq.from_pretrained(out)
    prior, config, speakers = load_prior(tiny_prior)
    assert type(loaded).__name__ == "UnitPrior" and same_weights(loaded, prior) and loaded.config == config


def test_push_to_hub_uploads_what_save_pretrained_writes(tiny_trained, monkeypatch):
    """The mixin's own push path, with the two calls that would reach the network recorded."""
    import huggingface_hub

    seen = {}

    def create_repo(self, repo_id, **kwargs):
        seen["repo"] = repo_id
        return huggingface_hub.RepoUrl(f"https://huggingface.co/{repo_id}")

    def upload_folder(self, *, repo_id, folder_path, **kwargs):
        seen["files"] = sorted(p.name for p in Path(folder_path).iterdir())
        return "https://huggingface.co/commit"

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", create_repo)
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", upload_folder)
    audio_vq.push_to_hub(model_dir(tiny_trained), "me/tiny", token="not-used")
    assert seen["repo"] == "me/tiny"
    assert seen["files"] == [
        "README.md",
        "checksum.sha256",
        "config.json",
        "config.yaml",
        "model.safetensors",
        "speakers.json",
    ]


def test_a_repo_id_is_loaded_from_huggingface_hubs_download(tiny_trained, tmp_path, monkeypatch):
    import huggingface_hub

    out = audio_vq.save_pretrained(model_dir(tiny_trained), tmp_path / "snapshot")
    asked = {}

    def snapshot_download(repo_id, **kwargs):
        asked.update(repo_id=repo_id, **kwargs)
        return str(out)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    # the mixin's own first look at the repository: its config.json
    monkeypatch.setattr(
        huggingface_hub.hub_mixin, "hf_hub_download", lambda repo_id, filename, **k: str(out / filename)
    )
    model = audio_vq.from_pretrained("me/tiny", revision="v1", local_files_only=True)
    assert same_weights(model, load_model(model_dir(tiny_trained)))
    assert asked["repo_id"] == "me/tiny" and asked["revision"] == "v1" and asked["local_files_only"]
    assert set(asked["allow_patterns"]) == set(hub.FILES)  # only the safetensors directory, never a pickle


def test_bad_sources_are_one_line_errors(tiny_trained, tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="is the model directory itself"):
        audio_vq.save_pretrained(model_dir(tiny_trained), model_dir(tiny_trained))
    with pytest.raises(ConfigError, match="expected a model or prior directory"):
        audio_vq.save_pretrained(object(), tmp_path / "x")
    hub._mixin.cache_clear()
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    try:
        with pytest.raises(ConfigError, match=r"pip install 'audio_vq\[hf\]'"):
            audio_vq.save_pretrained(model_dir(tiny_trained), tmp_path / "x")
        assert same_weights(audio_vq.from_pretrained(model_dir(tiny_trained)), load_model(model_dir(tiny_trained)))
    finally:
        hub._mixin.cache_clear()


def test_torch_hub_loads_through_the_repositorys_hubconf(tiny_trained, tiny_prior):
    model = torch.hub.load(str(REPO), "vqvae", str(model_dir(tiny_trained)), source="local")
    assert same_weights(model, load_model(model_dir(tiny_trained))) and not model.training
    prior = torch.hub.load(str(REPO), "prior", str(tiny_prior), source="local")
    assert same_weights(prior, load_prior(tiny_prior)[0])
    codec = torch.hub.load(str(REPO), "codec", str(model_dir(tiny_trained)), source="local")
    x = np.random.default_rng(0).uniform(-0.3, 0.3, 1600).astype(np.float32)
    assert codec.encode(x).codes.shape[-1] > 0
