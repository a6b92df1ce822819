"""torch.hub entries: ``torch.hub.load(<this repository>, "vqvae", <model dir>, source="local")``.

Each loads what training leaves on disk (safetensors, the checksum verified); nothing is
downloaded. From GitHub: ``torch.hub.load("<owner>/audio_vq", "vqvae", <model dir>)``.
"""

dependencies = ["torch", "numpy", "omegaconf", "safetensors", "soundfile", "soxr"]


def vqvae(model_dir, device="cpu"):
    """The VQVAE of a model directory (``<run>/model``), in eval mode."""
    from audio_vq.checkpoint import load_model

    return load_model(model_dir, device)


def prior(prior_dir, device="cpu"):
    """The UnitPrior of a prior directory (``<run>/prior``), in eval mode, with ``config`` and ``speaker_index``."""
    from audio_vq.hub import from_pretrained

    return from_pretrained(prior_dir, device)


def codec(model_dir, device="cpu"):
    """A Codec: the model with its extractor and generator, arrays in, arrays out (audio_vq.load)."""
    from audio_vq import load

    return load(model_dir, device)
