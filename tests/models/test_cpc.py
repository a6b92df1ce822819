"""models/cpc.py: the contrastive loss predicts the future (never sees it), ignores padding,
draws no negative from it, and its gradient reaches the encoder."""

import pytest
import torch

from audio_vq.models.cpc import CPCLoss
from audio_vq.models.vqvae import VQVAE

HOP = 16
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
    "cpc": {"weight": 1.0, "context_channels": 16, "steps": 3, "negatives": 8},
}


def _fit(cpc: CPCLoss, z_of_step, steps: int = 150) -> float:
    """Train ``cpc`` alone on the latents z_of_step(i) (B, D, N); its accuracy on a fresh batch."""
    optimizer = torch.optim.Adam(cpc.parameters(), lr=1e-2)
    for i in range(steps):
        loss, _ = cpc(z_of_step(i))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        return float(cpc(z_of_step(steps))[1])


def _codebook_sequence(generator: torch.Generator, predictable: bool) -> torch.Tensor:
    """(8, 4, 40) latents from a codebook of 6 vectors: a cycle through them (the future follows
    from the past) or i.i.d. draws (nothing does)."""
    book = torch.randn(6, 4, generator=torch.Generator().manual_seed(1))
    if predictable:
        start = torch.randint(6, (8, 1), generator=generator)
        ids = (start + torch.arange(40)) % 6
    else:
        ids = torch.randint(6, (8, 40), generator=generator)
    return book[ids].transpose(1, 2)


def test_it_learns_a_predictable_future_and_cannot_learn_an_unpredictable_one():
    # Catches: the target frame leaking into the context (the frame at t predicted from a state
    # that has read it: i.i.d. frames would then be picked out too) and predictions that do not
    # learn (a predictable sequence would stay at chance).
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    chance = 1 / 9
    predictable = _fit(CPCLoss(4, context_channels=16, steps=3, negatives=8), lambda i: _codebook_sequence(g, True))
    unpredictable = _fit(CPCLoss(4, context_channels=16, steps=3, negatives=8), lambda i: _codebook_sequence(g, False))
    assert predictable > 0.9, predictable
    # i.i.d. draws from 6 vectors: the true frame ties with the negatives that are the same vector
    assert unpredictable < 2.5 * chance, unpredictable


def test_padding_changes_nothing_and_is_never_a_negative():
    # Catches: negatives drawn from padded frames (a padded frame is easy to tell apart, so the
    # loss would drop for nothing) and futures past a row's end counted in the loss.
    torch.manual_seed(0)
    cpc = CPCLoss(4, context_channels=8, steps=2, negatives=4)
    z = torch.randn(2, 4, 12)
    mask = torch.ones(2, 12, dtype=torch.bool)
    mask[1, 7:] = False
    junk = z.clone()
    junk[1, :, 7:] = 1e3  # would dominate every score it entered
    torch.manual_seed(1)
    a = cpc(z, mask)
    torch.manual_seed(1)
    b = cpc(junk, mask)
    torch.testing.assert_close(a[0], b[0])
    torch.testing.assert_close(a[1], b[1])


def test_the_cpc_loss_trains_the_encoder_and_weight_zero_means_none():
    torch.manual_seed(0)
    model = VQVAE.from_config(CFG, num_speakers=2).eval()
    out = model(torch.rand(2, 30 * HOP) * 0.4 - 0.2, torch.tensor([0, 1]))
    assert out.cpc_loss is not None and out.cpc_loss > 0 and 0 <= float(out.cpc_accuracy) <= 1
    assert {"cpc_loss", "cpc_accuracy"} <= set(out.metrics())
    model.zero_grad()
    out.cpc_loss.backward()
    grads = [p.grad for p in model.encoder.parameters() if p.grad is not None]
    assert grads and sum(float(g.abs().sum()) for g in grads) > 0  # the straight-through latents carry it
    plain = VQVAE.from_config({**CFG, "cpc": {**CFG["cpc"], "weight": 0.0}}, num_speakers=2)
    assert plain.cpc is None and not any(k.startswith("cpc") for k in plain.state_dict())
    assert plain(torch.zeros(1, 4 * HOP), torch.tensor([0])).cpc_loss is None
    with pytest.raises(ValueError, match="at least 1"):
        CPCLoss(4, steps=0)
