"""Constants of the tiny model the shared `tiny_trained` fixture trains (tests/conftest.py).

A module of its own name: `conftest` is ambiguous once several folders have one."""

INFERENCE = "audio_vq.configs.inference"
# A model that trains 3 steps in seconds: hop 16 (1000 frames/s), K = 16, a 4-layer WaveNet,
# the paper's decoder (no pitch: the pitch models have fixtures of their own).
TINY = [
    "model.decoder.pitch=none",
    "model.encoder.channels=16",
    "model.encoder.strides=[2,2,2,2]",
    "model.quantizer.dim=8",
    "model.quantizer.codebook_size=16",
    "model.decoder.stacks=1",
    "model.decoder.layers_per_stack=4",
    "model.decoder.residual_channels=16",
    "model.decoder.gate_channels=32",
    "model.decoder.skip_channels=32",
    "model.decoder.speaker_dim=4",
    "data.crop_seconds=0.064",
    "train.batch_size=4",
    "data.num_workers=0",
    "train.threads=1",
]  # fixed threads: bit-exact reruns (auto may switch counts mid-run)
TINY_HOP = 16
RESIDUAL_LEVELS = 3  # the tiny_residual fixture's codebooks
HIERARCHY_RATIO = 4  # the tiny_hierarchical fixture's top_strides [2, 2]: frames one top code spans
