"""audio_vq: discrete speech representations from raw waveforms with a VQ-VAE."""

__version__ = "0.1.0"


def load_model(directory, device="cpu"):
    """The trained VQVAE of a model directory, in eval mode (see audio_vq.checkpoint.load_model)."""
    from .checkpoint import load_model as _load

    return _load(directory, device)
