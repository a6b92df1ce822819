"""The VQ-VAE: encoder.py (strided convs), quantizer.py (vector / Gumbel quantizers),
wavenet.py (the speaker-conditioned WaveNet decoder), vqvae.py (the composition)."""
