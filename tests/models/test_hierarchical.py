"""models/hierarchical.py: the conditioning direction (the top codes depend on the audio alone,
the bottom codes on the top's), the held top codes, exact lookup, batch invariance, and a
hierarchical VQ-VAE end to end."""

import numpy as np
import pytest
import torch

from audio_vq.config import compose
from audio_vq.generate import Generator
from audio_vq.models.hierarchical import HierarchicalQuantizer
from audio_vq.models.vqvae import VQVAE

D, K, STRIDES = 8, 16, (2, 2)  # r = 4 bottom frames per top code
R = 4


def quantizer(seed=0, **options) -> HierarchicalQuantizer:
    torch.manual_seed(seed)
    return HierarchicalQuantizer(D, K, top_strides=STRIDES, top_channels=16, **options).eval()


def features(batch=3, frames=40, seed=1) -> torch.Tensor:
    return torch.randn(batch, D, frames, generator=torch.Generator().manual_seed(seed))


def test_codes_hold_the_top_level_over_its_frames():
    q = quantizer()
    out = q(features(frames=42))  # 42 frames: a last top frame spanning only 2
    assert out.codes.shape == (3, 2, 42) and out.quantized.shape == (3, 2 * D, 42)
    top = out.codes[:, 0]
    assert torch.equal(top, top[:, ::R].repeat_interleave(R, dim=1)[:, :42])
    assert len(torch.unique(top)) > 1 and len(torch.unique(out.codes[:, 1])) > 1
    assert q.level_ratios == (R, 1) and q.min_levels == q.num_quantizers == 2


def test_the_top_codes_do_not_depend_on_the_bottom_level():
    """Change everything on the bottom's side (its conditioning and its codebook) while the
    input stays the same: the top codes stay, the bottom codes move."""
    q, z = quantizer(), features()
    before = q(z).codes
    with torch.no_grad():
        q.bottom_conditioning.weight.normal_()
        q.bottom.embedding.normal_()
    after = q(z).codes
    assert torch.equal(after[:, 0], before[:, 0])
    assert not torch.equal(after[:, 1], before[:, 1])


def test_the_bottom_codes_are_conditioned_on_the_top_codes():
    """Hold the bottom's own input (z_e) and everything of the bottom fixed, and change only the
    top (its codebook): the top codes change, and through them the bottom codes."""
    q, z = quantizer(), features()
    before = q(z).codes
    with torch.no_grad():
        q.top.embedding.copy_(q.top.embedding.flip(0))  # the same vectors, other codes
        q.top.embedding.mul_(3.0)  # and other vectors: the bottom sees other conditioning
    after = q(z).codes
    assert not torch.equal(after[:, 0], before[:, 0])
    assert not torch.equal(after[:, 1], before[:, 1])


def test_lookup_reproduces_the_forward_and_refuses_bad_codes():
    q = quantizer()
    out = q(features(frames=42))
    assert torch.equal(q.lookup(out.codes), out.quantized)
    with pytest.raises(ValueError, match="decodes from both levels"):
        q.lookup(out.codes[:, 1:])
    broken = out.codes.clone()
    broken[0, 0, 1] = (broken[0, 0, 1] + 1) % K  # not held over its group any more
    with pytest.raises(ValueError, match="hold one code over each group of 4 frames"):
        q.lookup(broken)


def test_an_utterance_quantizes_the_same_alone_and_padded_in_a_batch():
    q = quantizer()
    z = features(batch=2, frames=40)
    mask = torch.ones(2, 40, dtype=torch.bool)
    mask[1, 23:] = False  # a padded row whose real length is not a multiple of r
    z[1, :, 23:] = 100.0  # junk in the padding must not reach any real frame's code
    batched = q(z, mask).codes
    alone = q(z[1:, :, :23]).codes
    assert torch.equal(batched[1:, :, :23], alone)


def test_a_hierarchical_vqvae_trains_encodes_and_decodes():
    cfg = compose(
        "train",
        [
            "model=hierarchical",
            "model.encoder.channels=16",
            "model.encoder.strides=[4,4]",
            "model.quantizer.dim=8",
            "model.quantizer.codebook_size=16",
            "model.quantizer.top_strides=[2,2]",
            "model.quantizer.top_channels=8",
            "model.decoder.stacks=1",
            "model.decoder.layers_per_stack=3",
            "model.decoder.residual_channels=8",
            "model.decoder.gate_channels=16",
            "model.decoder.skip_channels=16",
            "model.decoder.speaker_dim=4",
        ],
    )
    torch.manual_seed(0)
    model = VQVAE.from_config(cfg.model, num_speakers=2)
    assert model.decoder.cond_channels == 16 and model.level_hops == (64, 16)
    audio = 0.3 * torch.sin(torch.arange(2 * 640) * 0.05).view(2, 640)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(15):
        out = model(audio, torch.tensor([0, 1]))
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        losses.append(float(out.reconstruction_loss.detach()))
    assert losses[-1] < losses[0]
    assert model.quantizer.top_encoder.strided[0].conv.weight.grad.abs().sum() > 0  # the top trains
    model.eval()
    codes = model.encode(audio)
    assert codes.shape == (2, 2, 40) and model.codebook_vectors().shape == (2, 16, 8)
    audio_out = Generator(model, backend="torch").generate([c.numpy() for c in codes], [0, 1], seed=0)
    assert [a.shape for a in audio_out] == [(640,), (640,)] and all(np.isfinite(a).all() for a in audio_out)
    with pytest.raises(ValueError, match=r"2 <= levels <= 2"):
        Generator(model, backend="torch").generate([codes[0, :1].numpy()], [0], seed=0)
