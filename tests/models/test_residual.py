"""models/residual.py: each level codes what the ones before it left, any first n levels decode
on their own, quantizer dropout, and a VQ-VAE with residual codes end to end."""

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from audio_vq.config import compose
from audio_vq.generate import Generator
from audio_vq.models.quantizer import VectorQuantizer
from audio_vq.models.residual import ResidualVectorQuantizer
from audio_vq.models.vqvae import VQVAE

D, K, Q = 8, 16, 4


def speechlike(batch=6, frames=200, seed=0):
    """z (B, D, T) with structure at several scales: what a residual codebook has to peel off."""
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.randn(batch, D, frames // 20, generator=gen).repeat_interleave(20, dim=2)
    return coarse + 0.3 * torch.randn(batch, D, frames, generator=gen)


def initialised(num_quantizers=Q, dropout=0.0, seed=0):
    """A residual quantizer whose levels were k-means-initialised on speechlike data, in eval mode."""
    torch.manual_seed(seed)
    q = ResidualVectorQuantizer(
        D, K, num_quantizers=num_quantizers, quantizer_dropout=dropout, ema=True, kmeans_init=True
    ).train()
    q(speechlike(seed=1))
    return q.eval()


def test_quantization_error_shrinks_with_each_level():
    q = initialised()
    z = speechlike(seed=2)  # other data than the k-means saw
    codes = q(z).codes
    assert codes.shape == (6, Q, 200) and codes.dtype == torch.long
    errors = [float((z - q.lookup(codes[:, :n])).pow(2).mean()) for n in range(1, Q + 1)]
    assert all(b < 0.9 * a for a, b in zip(errors, errors[1:])), errors
    assert errors[0] < float(z.pow(2).mean())


def test_lookup_of_all_levels_is_the_forward_bit_for_bit():
    q = initialised()
    out = q(speechlike(seed=3))
    assert torch.equal(q.lookup(out.codes), out.quantized)
    with pytest.raises(ValueError, match=r"1 <= levels <= 4"):
        q.lookup(torch.zeros(1, Q + 1, 5, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\(B, levels, T\)"):
        q.lookup(torch.zeros(1, 5, dtype=torch.long))


def test_the_first_n_levels_are_a_model_with_n_levels():
    full = initialised()
    z = speechlike(seed=4)
    for n in (1, 2, 3):
        small = ResidualVectorQuantizer(D, K, num_quantizers=n, ema=True, kmeans_init=True).eval()
        small.load_state_dict({k: v for k, v in full.state_dict().items() if int(k.split(".")[1]) < n})
        out = small(z)
        assert torch.equal(out.codes, full(z).codes[:, :n])
        assert torch.equal(out.quantized, full.lookup(full(z).codes[:, :n]))


def test_one_level_is_the_vector_quantizer():
    torch.manual_seed(0)
    single = VectorQuantizer(D, K).eval()
    residual = ResidualVectorQuantizer(D, K, num_quantizers=1).eval()
    residual.levels[0].load_state_dict(single.state_dict())
    z = speechlike(seed=5)
    a, b = single(z), residual(z)
    assert torch.equal(a.codes, b.codes) and torch.equal(a.quantized, b.quantized)
    torch.testing.assert_close(a.loss, b.loss, rtol=0, atol=0)


def test_quantizer_dropout_draws_levels_per_utterance_in_training_only():
    q = ResidualVectorQuantizer(D, K, num_quantizers=Q, quantizer_dropout=1.0).train()
    torch.manual_seed(0)
    counts = np.bincount(q.active_levels(8000, torch.device("cpu")).numpy(), minlength=Q + 1)
    assert counts[0] == 0 and all(abs(c - 2000) < 200 for c in counts[1:]), counts
    half = ResidualVectorQuantizer(D, K, num_quantizers=Q, quantizer_dropout=0.5).train()
    assert abs(float((half.active_levels(8000, torch.device("cpu")) == Q).float().mean()) - (0.5 + 0.5 / Q)) < 0.03
    assert bool((q.eval().active_levels(100, torch.device("cpu")) == Q).all())
    with pytest.raises(ValueError, match="quantizer_dropout"):
        ResidualVectorQuantizer(D, K, quantizer_dropout=1.5)


def test_a_dropped_utterance_is_decoded_from_its_first_levels_only():
    q = initialised(dropout=1.0).train()
    for level in q.levels:  # no restarts or k-means now: only the EMA moves the codebooks
        level.initialized.fill_(True)
    z = speechlike(batch=3, seed=6)
    torch.manual_seed(11)
    active = q.active_levels(3, z.device)
    before = [level.embedding.clone() for level in q.levels]
    torch.manual_seed(11)
    out = q(z)
    for b, n in enumerate(active.tolist()):
        expected = sum(
            before[level][out.codes[b, level]].T for level in range(n)
        )  # the vectors picked before the EMA step
        torch.testing.assert_close(out.quantized[b], expected, rtol=0, atol=1e-6)
    assert sorted(set(active.tolist())) != [Q]  # the seed really dropped levels somewhere


def model(num_quantizers=Q):
    cfg = compose(
        "train",
        [
            "model=small",
            "model/quantizer=residual",
            f"model.quantizer.num_quantizers={num_quantizers}",
            "model.quantizer.codebook_size=16",
            "model.decoder.stacks=1",
            "model.decoder.layers_per_stack=3",
            "model.decoder.residual_channels=8",
            "model.decoder.gate_channels=8",
            "model.decoder.skip_channels=8",
            "model.decoder.pitch=none",
        ],
    )
    torch.manual_seed(0)
    return VQVAE.from_config(OmegaConf.to_container(cfg.model), num_speakers=2)


def test_a_residual_vqvae_trains_encodes_and_decodes_any_first_levels():
    m = model().train()
    x = torch.randn(2, 20 * m.hop) * 0.1
    out = m(x, torch.tensor([0, 1]))
    assert out.codes.shape == (2, Q, 20) and torch.isfinite(out.loss)
    out.loss.backward()
    assert all(p.grad is not None for n, p in m.named_parameters() if n.startswith(("encoder", "decoder")))
    m.eval()
    codes = m.encode(x)
    assert codes.shape == (2, Q, 20) and m.num_quantizers == Q
    assert m.codebook_vectors().shape == (Q, 16, 32)
    gen = Generator(m, backend="numba", threads=1)
    full, coarse = (gen.generate([codes[0, :n]], [0], argmax=True)[0] for n in (Q, 1))
    assert full.shape == coarse.shape == (20 * m.hop,)
    latents = [m.latents(codes[:1, :n]) for n in (1, Q)]
    assert not torch.equal(*latents)  # the later levels do change what the decoder hears
    with pytest.raises(ValueError, match=r"1 <= levels <= 4"):
        gen.generate([np.zeros((Q + 1, 3), np.int64)], [0])
