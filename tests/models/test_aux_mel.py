"""models/aux_mel.py: the auxiliary log-mel decoder's frames line up with the encoder's, its
loss ignores padding, and its gradient reaches the encoder."""

import numpy as np
import pytest
import torch

from audio_vq.models.aux_mel import LogMel, MelDecoder, masked_l1
from audio_vq.models.vqvae import VQVAE

HOP, SR = 16, 16000
CFG = {
    "encoder": {"channels": 16, "strides": [2, 2, 2, 2]},
    "quantizer": {"kind": "vector", "dim": 8, "codebook_size": 16},
    "decoder": {
        "stacks": 1,
        "layers_per_stack": 3,
        "residual_channels": 8,
        "gate_channels": 16,
        "skip_channels": 16,
        "speaker_dim": 4,
    },
    "aux_mel": {"weight": 1.0, "n_mels": 8, "channels": 16, "layers": 2, "kernel_size": 3},
}


@pytest.mark.parametrize("hop", [16, 320])
def test_frame_i_of_the_log_mel_describes_samples_i_hop_to_i_plus_one_hop(hop):
    """A burst filling exactly frame k's samples is loudest in frame k; the frame count is
    ceil(T / hop), as the encoder's."""
    mel = LogMel(hop, SR, n_mels=8)
    T = 10 * hop - 3
    for k in (0, 4, 9):
        x = torch.zeros(1, T)
        burst = torch.from_numpy(np.random.default_rng(k).uniform(-0.5, 0.5, hop)).float()
        x[0, k * hop : (k + 1) * hop] = burst[: min(hop, T - k * hop)]
        out = mel(x)
        assert out.shape == (1, 8, 10)
        assert int(out[0].sum(0).argmax()) == k


def test_the_aux_loss_ignores_padding_and_trains_the_encoder():
    torch.manual_seed(0)
    model = VQVAE.from_config(CFG, num_speakers=2)
    x = torch.rand(2, 40 * HOP) * 0.4 - 0.2
    mask = torch.ones_like(x, dtype=torch.bool)
    mask[1, 25 * HOP :] = False
    junk = x.clone()
    junk[1, 25 * HOP :] = 0.9
    spk = torch.tensor([0, 1])
    model.eval()  # no jitter, no input noise: the same pass twice
    a, b = model(x, spk, mask), model(junk, spk, mask)
    assert a.aux_mel_loss is not None and a.aux_mel_loss > 0
    torch.testing.assert_close(a.aux_mel_loss, b.aux_mel_loss)
    model.zero_grad()
    a.aux_mel_loss.backward()
    grads = [p.grad for p in model.encoder.parameters() if p.grad is not None]
    assert grads and sum(float(g.abs().sum()) for g in grads) > 0  # the straight-through latents carry it
    assert all(p.grad is None or float(p.grad.abs().sum()) == 0 for p in model.decoder.parameters())
    assert "aux_mel_loss" in a.metrics()


def test_weight_zero_means_no_auxiliary_decoder():
    model = VQVAE.from_config({**CFG, "aux_mel": {**CFG["aux_mel"], "weight": 0.0}}, num_speakers=2)
    assert model.aux_mel is None and not any(k.startswith("aux_mel") for k in model.state_dict())
    assert model(torch.zeros(1, 4 * HOP), torch.tensor([0])).aux_mel_loss is None
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        MelDecoder(8, 0, 8, kernel_size=4)


def test_masked_l1_averages_the_real_frames_only():
    p, t = torch.zeros(1, 2, 4), torch.tensor([[[1.0, 1.0, 5.0, 5.0], [1.0, 1.0, 5.0, 5.0]]])
    assert float(masked_l1(p, t, torch.tensor([[True, True, False, False]]))) == 1.0
    assert float(masked_l1(p, t, None)) == 3.0
