"""VQVAE: presets, padding and masks, speaker table, jitter, autocast, and a real overfit."""

import pytest
import torch
from omegaconf import OmegaConf

from audio_vq import audio
from audio_vq.config import compose
from audio_vq.corpora.synthetic import generate
from audio_vq.models.vqvae import VQVAE, time_jitter

TINY = {
    "encoder": {"channels": 16, "strides": [2, 2, 2, 2], "residual_layers": 0},
    "quantizer": {"kind": "vector", "dim": 8, "codebook_size": 16},
    "decoder": {
        "stacks": 1,
        "layers_per_stack": 6,
        "residual_channels": 16,
        "gate_channels": 32,
        "skip_channels": 32,
        "speaker_dim": 4,
    },
}


def tiny(num_speakers=3, **quantizer):
    cfg = {**TINY, "quantizer": {**TINY["quantizer"], **quantizer}}
    torch.manual_seed(0)
    return VQVAE.from_config(cfg, num_speakers)


@pytest.mark.parametrize("preset, hop, k", [("small", 320, 128), ("paper", 64, 512), ("phoneme25hz", 640, 128)])
def test_presets_build_with_the_papers_numbers(preset, hop, k):
    cfg = compose("train", [f"model={preset}"])
    model = VQVAE.from_config(OmegaConf.to_container(cfg.model), num_speakers=4)
    assert model.hop == hop and model.quantizer.codebook_size == k
    assert model.speakers.weight.shape == (4, cfg.model.decoder.speaker_dim)


def test_gumbel_quantizer_behind_the_same_model():
    cfg = compose("train", ["model/quantizer=gumbel", "model.quantizer.codebook_size=32", "model.decoder.pitch=none"])
    model = VQVAE.from_config(OmegaConf.to_container(cfg.model), num_speakers=2)
    out = model(torch.randn(2, 10 * model.hop) * 0.1, torch.tensor([0, 1]))
    assert out.codes.shape == (2, 1, 10) and int(out.codes.max()) < 32 and torch.isfinite(out.loss)


def test_odd_lengths_are_padded_and_masked_out():
    model = tiny().eval()
    x = torch.rand(1, 1000) * 0.2 - 0.1
    speaker = torch.tensor([1])
    alone = model(x, speaker)
    assert alone.codes.shape == (1, 1, 63)  # ceil(1000 / 16)
    # the same utterance inside a longer, masked batch row gives the same losses
    padded = torch.cat([x, torch.zeros(1, 100)], dim=1)
    mask = torch.zeros_like(padded, dtype=torch.bool)
    mask[:, :1000] = True
    inside = model(padded, speaker, mask)
    torch.testing.assert_close(inside.reconstruction_loss, alone.reconstruction_loss)
    torch.testing.assert_close(inside.commitment_loss, alone.commitment_loss)
    assert torch.equal(inside.codes[:, :, :63], alone.codes)


def test_loss_is_reconstruction_plus_quantizer_terms_and_all_parameters_learn():
    model = tiny().train()
    out = model(torch.randn(2, 320) * 0.1, torch.tensor([0, 2]))
    q = out.quantizer
    torch.testing.assert_close(out.loss, out.reconstruction_loss + q.codebook_loss + 0.25 * q.commitment_loss)
    out.loss.backward()
    silent = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert silent == [] or all(n.startswith("speakers") for n in silent)  # only unused speaker rows
    assert {"loss", "reconstruction_loss", "quantizer_loss", "perplexity", "usage"} <= set(out.metrics())


def test_speaker_identity_changes_the_decoding_and_bad_indices_are_refused():
    model = tiny().eval()
    x = torch.rand(1, 320) * 0.2 - 0.1
    z = model.latents(model.encode(x))
    a = model.decoder_logits(x, z, torch.tensor([0]))
    b = model.decoder_logits(x, z, torch.tensor([1]))
    assert not torch.allclose(a, b)
    with pytest.raises(ValueError, match="speaker index -1"):
        model(x, torch.tensor([-1]))
    with pytest.raises(ValueError, match="speaker index 3"):
        model(x, torch.tensor([3]))


def test_encode_does_not_update_the_codebook():
    model = tiny(ema=True).train()
    before = model.quantizer.codebook.clone()
    codes = model.encode(torch.randn(2, 320) * 0.1)
    assert codes.shape == (2, 1, 20) and model.training
    assert torch.equal(model.quantizer.codebook, before)
    torch.testing.assert_close(model.latents(codes), model.quantizer.lookup(codes))


def test_time_jitter_moves_frames_to_neighbours_with_probability_p():
    z = torch.arange(1000.0).view(1, 1, 1000).expand(2, 3, 1000).contiguous()
    assert torch.equal(time_jitter(z, 0.0), z)
    g = torch.Generator().manual_seed(0)
    j = time_jitter(z, 0.12, generator=g)
    moved = (j != z)[:, 0, 1:-1]
    assert 0.09 < moved.float().mean() < 0.15
    assert ((j - z).abs() <= 1).all()  # only to a neighbour
    assert torch.equal(j[:, 0], j[:, 2])  # whole frames move, all channels together


def test_bf16_autocast_step_runs_with_the_quantizer_in_fp32():
    model = tiny(ema=True).train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(torch.randn(2, 320) * 0.1, torch.tensor([0, 1]))
    assert out.quantizer.commitment_loss.dtype == torch.float32
    assert model.quantizer.codebook.dtype == torch.float32
    out.loss.backward()
    assert torch.isfinite(out.loss)


@pytest.fixture(scope="module")
def utterance(tmp_path_factory):
    root = generate(tmp_path_factory.mktemp("synthetic") / "c", num_speakers=1, minutes=0.05, seed=3)
    wav = sorted(root.glob("*/*.wav"))[0]
    return torch.from_numpy(audio.load(wav))


def test_a_small_model_overfits_one_synthetic_utterance(utterance):
    """Reconstruction cross-entropy on 0.5 s of toy speech falls well below where it starts."""
    torch.manual_seed(0)
    start = int(0.2 * audio.SAMPLE_RATE)
    x = utterance[start : start + audio.SAMPLE_RATE // 2].unsqueeze(0)
    model = tiny(num_speakers=1)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(150):
        out = model(x, torch.tensor([0]))
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        losses.append(out.reconstruction_loss.item())
    # starts near log(256) = 5.55 nats; a model that learns nothing stays above ~4
    assert losses[0] > 5.0
    assert min(losses[-10:]) < 0.6 * losses[0], losses[::15]
