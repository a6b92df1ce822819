"""audio_vq: discrete speech representations from raw waveforms with a VQ-VAE."""

__version__ = "0.1.0"
