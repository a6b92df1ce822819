"""audio_vq: discrete speech representations from raw waveforms with a VQ-VAE.

The Python API (audio_vq.api) is importable from here: ``audio_vq.load(model_dir)`` gives a
Codec (audio <-> units in memory), and each command is a function (``audio_vq.extract(...)``).
Names are resolved on first use, so ``import audio_vq`` (and ``audio-vq --help``) stays light.
"""

__version__ = "0.1.0"

API = (
    "load",
    "run",
    "prepare",
    "train",
    "train_prior",
    "extract",
    "units_convert",
    "reconstruct",
    "convert",
    "synthesize",
    "sample",
    "evaluate",
    "evaluate_prior",
    "export_listening_test",
    "listening_results",
)
HUB = ("from_pretrained", "save_pretrained", "push_to_hub")  # models by name (audio_vq.hub, the hf extra)
__all__ = ["__version__", "load_model", "Codec", *API, *HUB]


def load_model(directory, device="cpu"):
    """The trained VQVAE of a model directory, in eval mode (see audio_vq.checkpoint.load_model)."""
    from .checkpoint import load_model as _load

    return _load(directory, device)


def __getattr__(name):
    if name in API:
        from . import api

        return getattr(api, name)
    if name in HUB:
        from . import hub

        return getattr(hub, name)
    if name == "Codec":
        from .codec import Codec

        return Codec
    raise AttributeError(f"module 'audio_vq' has no attribute {name!r}")
