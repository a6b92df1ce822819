"""models/wavenet.py: causality, receptive field, conditioning alignment, shapes, output
distributions (loss and sampling), and that a tiny WaveNet learns."""

import math

import numpy as np
import pytest
import torch

from audio_vq.audio import mulaw_decode, mulaw_encode
from audio_vq.models.distributions import (
    categorical_loss,
    categorical_sample,
    logistic_mixture_log_prob,
    logistic_mixture_loss,
    logistic_mixture_sample,
)
from audio_vq.models.wavenet import WaveNet, default_upsample_strides

TINY = dict(
    stacks=2, layers_per_stack=3, kernel_size=2, residual_channels=8, gate_channels=16, skip_channels=8, speaker_dim=3
)


def tiny(cond_channels=4, hop=4, seed=0, **kw):
    torch.manual_seed(seed)
    args = {**TINY, **kw}
    return WaveNet(cond_channels, hop, **args).double().eval()


def inputs(model, batch=2, frames=16, seed=1):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randint(0, model.mu_law_channels, (batch, frames * model.hop), generator=gen)
    c = torch.randn(batch, model.cond_channels, frames, generator=gen, dtype=torch.float64)
    g = torch.randn(batch, model.speaker_dim, generator=gen, dtype=torch.float64) if model.speaker_dim else None
    return x, c, g


def per_step_change(a, b, tol=1e-10):
    """(T,) bool: which time steps of two (B, C, T) outputs differ anywhere."""
    return ((a - b).abs() > tol).any(dim=(0, 1))


def randomize(model, seed=5):
    """Random weights everywhere (also in the transposed upsamplers, which start as 'repeat')."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.5)
    return model


def saved_bytes(fn):
    """fn()'s result and the bytes autograd keeps for its backward pass (each storage once)."""
    storages = {}

    def pack(t):
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return out, sum(storages.values())


@pytest.mark.parametrize("upsample", ["repeat", "transposed"])
def test_activation_checkpointing_gives_the_same_gradients_and_keeps_less(upsample):
    model = randomize(tiny(upsample=upsample, cond_layers=1)).train()
    x, c, g = inputs(model, frames=32)
    c.requires_grad_(True)
    grads, kept = [], []
    for on in (False, True):
        model.activation_checkpointing = on
        model.zero_grad()
        c.grad = None
        logits, nbytes = saved_bytes(lambda: model(x, c, g))
        logits.square().mean().backward()
        grads.append([p.grad.clone() for p in model.parameters()] + [c.grad.clone()])
        kept.append(nbytes)
    for plain, recomputed in zip(*grads):
        torch.testing.assert_close(recomputed, plain, rtol=0, atol=0)
    # only each stack's input (and the head's) is kept, not every layer's gate activations
    assert kept[1] < 0.5 * kept[0], kept


# -- shapes and input checks -------------------------------------------------------------------


@pytest.mark.parametrize("upsample", ["repeat", "transposed"])
@pytest.mark.parametrize("output, channels", [("categorical", 256), ("logistic_mixture", 30)])
def test_output_shape(upsample, output, channels):
    model = tiny(upsample=upsample, output=output, mixtures=10)
    x, c, g = inputs(model)
    assert model(x, c, g).shape == (2, channels, 64)
    assert model.out_channels == channels


def test_wrong_lengths_and_conditioning_are_refused():
    model = tiny(hop=4)
    x, c, g = inputs(model, frames=16)
    with pytest.raises(ValueError, match=r"T=63.*16 frames.*hop 4"):
        model(x[:, :63], c, g)
    with pytest.raises(ValueError, match="T=64"):
        model(x, c[:, :, :15], g)
    with pytest.raises(ValueError, match="cond_channels"):
        model(x, c[:, :3], g)
    with pytest.raises(ValueError, match="speaker_dim"):
        model(x, c, None)
    with pytest.raises(ValueError, match="speaker_dim=0"):
        tiny(speaker_dim=0)(x, c, g)
    with pytest.raises(ValueError, match="even"):
        WaveNet(4, 4, gate_channels=15)
    with pytest.raises(ValueError, match="product"):
        WaveNet(4, 4, upsample="transposed", upsample_strides=[2, 3])


def test_parameter_layout_for_the_incremental_generator():
    model = WaveNet(
        4,
        4,
        stacks=2,
        layers_per_stack=3,
        kernel_size=3,
        residual_channels=8,
        gate_channels=16,
        skip_channels=12,
        speaker_dim=5,
    )
    assert model.dilations == [1, 2, 4, 1, 2, 4]
    for i, (layer, d) in enumerate(zip(model.layers, model.dilations)):
        assert layer.dilated.weight.shape == (16, 8, 3) and layer.dilated.dilation == (d,)
        assert layer.cond.weight.shape == (16, 4, 1) and layer.cond.bias is None
        assert layer.speaker.weight.shape == (16, 5) and layer.speaker.bias is None
        assert layer.skip.weight.shape == (12, 8, 1)
        if i < 5:
            assert layer.residual.weight.shape == (8, 8, 1)
    assert model.layers[-1].residual is None  # nothing reads the last layer's residual output
    assert model.embedding.weight.shape == (256, 8)
    assert model.head_out.weight.shape == (256, 12, 1)
    assert model.initial_class == int(mulaw_encode(np.zeros(1))[0]) == 128
    # every parameter gets a gradient (DDP without find_unused_parameters)
    model = model.double()
    x, c, g = inputs(model)
    model.loss(model(x, c, g), mulaw_decode(x)).backward()
    assert all(p.grad is not None for p in model.parameters())


def test_default_upsample_strides():
    assert default_upsample_strides(64) == [4, 4, 4]
    assert default_upsample_strides(160) == [4, 4, 2, 5]
    assert math.prod(default_upsample_strides(640)) == 640
    assert default_upsample_strides(1) == []


# -- causality and receptive field ---------------------------------------------------------------


def dependency_set(model, t, c, g, T):
    """Which positions s of x change logits[..., t] (one batch row per perturbed position)."""
    gen = torch.Generator().manual_seed(3)
    base = torch.randint(0, 256, (1, T), generator=gen)
    x = base.repeat(T + 1, 1)
    for s in range(T):
        x[s + 1, s] = (base[0, s] + 77) % 256
    cc, gg = c[:1].repeat(T + 1, 1, 1), None if g is None else g[:1].repeat(T + 1, 1)
    with torch.no_grad():
        out = model(x, cc, gg)[:, :, t]
    diff = (out[1:] - out[:1]).abs().amax(dim=1) > 1e-10
    return set(torch.nonzero(diff).flatten().tolist())


@pytest.mark.parametrize("upsample", ["repeat", "transposed"])
@pytest.mark.parametrize("output", ["categorical", "logistic_mixture"])
@pytest.mark.parametrize("cond_layers", [0, 2])
def test_causality_and_receptive_field_exactly(upsample, output, cond_layers):
    """logits[t] depends on exactly x[t - receptive_field], ..., x[t - 1]: never x[t] or later."""
    model = randomize(tiny(upsample=upsample, output=output, mixtures=2, cond_layers=cond_layers))
    assert model.receptive_field == 2 * (1 + 2 + 4) + 1 == 15
    x, c, g = inputs(model, batch=1, frames=12)
    T = 48
    for t in [0, 1, 7, 20, 47]:
        assert dependency_set(model, t, c, g, T) == set(range(max(0, t - 15), t))


def test_causality_by_perturbing_the_future():
    model = randomize(tiny(upsample="transposed", cond_layers=1))
    x, c, g = inputs(model, frames=16)
    with torch.no_grad():
        ref = model(x, c, g)
        for t in [0, 5, 33, 63]:
            x2 = x.clone()
            x2[:, t:] = (x2[:, t:] + 101) % 256
            out = model(x2, c, g)
            assert torch.equal(out[..., : t + 1], ref[..., : t + 1]) or torch.allclose(
                out[..., : t + 1], ref[..., : t + 1], atol=1e-12, rtol=0
            )
            if t + 1 < x.shape[1]:
                assert not torch.allclose(out[..., t + 1], ref[..., t + 1])


@pytest.mark.parametrize(
    "kw, rf",
    [
        (dict(stacks=2, layers_per_stack=3, kernel_size=2), 15),
        (dict(stacks=1, layers_per_stack=4, kernel_size=3), 2 * 15 + 1),
        (dict(stacks=3, layers_per_stack=2, kernel_size=2), 3 * 3 + 1),
        (dict(stacks=2, layers_per_stack=10, kernel_size=2), 2047),
    ],
)
def test_receptive_field_hand_computed(kw, rf):
    assert WaveNet(4, 4, **kw).receptive_field == rf


def test_receptive_field_empirical_kernel_3():
    model = randomize(tiny(stacks=1, layers_per_stack=3, kernel_size=3))
    rf = model.receptive_field
    assert rf == 2 * 7 + 1
    x, c, g = inputs(model, batch=1, frames=10)
    assert dependency_set(model, 30, c, g, 40) == set(range(30 - rf, 30))


# -- conditioning --------------------------------------------------------------------------------


@pytest.mark.parametrize("hop, f", [(4, 0), (4, 5), (5, 3), (1, 9)])
def test_repeat_conditioning_alignment(hop, f):
    """Frame f conditions samples [f*hop, (f+1)*hop): earlier outputs never change; every output
    in the window changes; later ones only through the receptive field of the residual stack."""
    model = randomize(tiny(hop=hop))
    x, c, g = inputs(model, frames=16)
    c2 = c.clone()
    c2[:, :, f] += 1.0
    with torch.no_grad():
        diff = per_step_change(model(x, c2, g), model(x, c, g))
    start, end = f * hop, (f + 1) * hop
    assert not diff[:start].any()
    assert diff[start:end].all()
    assert not diff[end - 1 + model.receptive_field :].any()


def test_speaker_vector_changes_every_output():
    model = randomize(tiny())
    x, c, g = inputs(model)
    with torch.no_grad():
        diff = per_step_change(model(x, c, g + 0.5), model(x, c, g))
    assert diff.all()


def test_transposed_upsampler_starts_as_repeat():
    rep = tiny(hop=8)
    tr = tiny(hop=8, upsample="transposed")
    tr.load_state_dict(rep.state_dict(), strict=False)
    x, c, g = inputs(rep, frames=6)
    with torch.no_grad():
        torch.testing.assert_close(tr(x, c, g), rep(x, c, g))
        torch.testing.assert_close(tr.local_features(c), c.repeat_interleave(8, dim=2))


@pytest.mark.parametrize("hop, strides", [(4, [4]), (4, [2, 2]), (6, [2, 3]), (5, [5]), (12, [3, 4])])
def test_transposed_influence_is_centred_on_the_frame_window(hop, strides):
    model = randomize(tiny(cond_channels=2, hop=hop, upsample="transposed", upsample_strides=strides))
    frames, f = 10, 4
    c = torch.zeros(1, 2, frames, dtype=torch.float64)
    base = model.local_features(c)
    c[:, :, f] = 1.0
    with torch.no_grad():
        resp = (model.local_features(c) - base).abs().sum(dim=(0, 1))
    assert resp.shape == (frames * hop,)
    support = torch.nonzero(resp > 1e-12).flatten()
    assert (support[0] + support[-1]) / 2 == f * hop + (hop - 1) / 2
    assert support[0] <= f * hop and support[-1] >= (f + 1) * hop - 1


def test_cond_stack_looks_ahead_at_frame_rate_only():
    model = randomize(tiny(hop=4, cond_layers=1, cond_kernel_size=3))
    x, c, g = inputs(model, frames=16)
    c2 = c.clone()
    c2[:, :, 6] += 1.0
    with torch.no_grad():
        diff = per_step_change(model(x, c2, g), model(x, c, g))
    assert not diff[: 5 * 4].any() and diff[5 * 4 : 7 * 4].all()


# -- output distributions ------------------------------------------------------------------------


def test_categorical_loss_extremes_and_mask():
    audio = torch.rand(2, 50) * 2 - 1
    classes = mulaw_encode(audio)
    right = torch.nn.functional.one_hot(classes, 256).transpose(1, 2).float() * 100.0
    assert categorical_loss(right, audio).item() < 1e-6
    assert categorical_loss(right, classes).item() < 1e-6  # integer targets are classes
    assert categorical_loss(torch.zeros(2, 256, 50), audio).item() == pytest.approx(math.log(256), rel=1e-6)
    wrong = right.clone()
    wrong[:, :, 25:] = torch.roll(wrong[:, :, 25:], 1, dims=1)
    mask = torch.zeros(2, 50, dtype=torch.bool)
    mask[:, :25] = True
    assert categorical_loss(wrong, audio, mask).item() < 1e-6
    assert categorical_loss(wrong, audio).item() > 10


def mixture_logits(weights, means, log_scales, T=1):
    return torch.tensor(list(weights) + list(means) + list(log_scales), dtype=torch.float64)[None, :, None].repeat(
        1, 1, T
    )


@pytest.mark.parametrize("log_scales", [(-3.0, -5.0), (-1.0, -12.0), (0.5, -2.0)])
def test_logistic_mixture_is_a_distribution_over_the_bins(log_scales):
    """exp(log_prob) summed over all 2^16 bins is 1 (edge bins hold the tails)."""
    bins = 2**16
    grid = torch.linspace(-1, 1, bins, dtype=torch.float64)[None]
    logits = mixture_logits([0.3, -0.2], [0.1, -0.95], log_scales, T=bins)
    total = logistic_mixture_log_prob(logits, grid).exp().sum().item()
    assert total == pytest.approx(1.0, abs=2e-3)
    # float32 gives the same (the small-bin branch keeps it accurate)
    total32 = logistic_mixture_log_prob(logits.float(), grid.float()).exp().double().sum().item()
    assert total32 == pytest.approx(1.0, abs=5e-3)


def test_logistic_mixture_loss_prefers_the_right_mean_and_is_finite_at_extremes():
    y = torch.tensor([[0.3, -1.0, 1.0, 0.0]])
    good = torch.stack([mixture_logits([0.0], [v], [-6.0])[..., 0] for v in y[0].tolist()], dim=-1).float()
    bad = torch.stack([mixture_logits([0.0], [v + 0.5], [-6.0])[..., 0] for v in y[0].tolist()], dim=-1).float()
    lg, lb = logistic_mixture_loss(good, y), logistic_mixture_loss(bad, y)
    assert torch.isfinite(lg) and torch.isfinite(lb) and lg < lb
    wild = torch.randn(3, 30, 40) * 50
    assert torch.isfinite(logistic_mixture_loss(wild, torch.rand(3, 40) * 2 - 1))


def test_categorical_sample_inverse_cdf():
    logits = torch.tensor([[0.0, math.log(3.0)]])  # probs 0.25, 0.75
    assert categorical_sample(logits, torch.tensor([0.2499])).item() == 0
    assert categorical_sample(logits, torch.tensor([0.2501])).item() == 1
    assert categorical_sample(logits, torch.tensor([0.999999])).item() == 1
    assert categorical_sample(logits, torch.tensor([0.0]), argmax=True).item() == 1


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_categorical_sample_statistics_and_determinism(temperature):
    torch.manual_seed(0)
    logits = torch.randn(1, 6) * 1.5
    n = 40_000
    u = torch.rand(n)
    draws = categorical_sample(logits.expand(n, 6), u, temperature)
    assert torch.equal(draws, categorical_sample(logits.expand(n, 6), u, temperature))
    freq = torch.bincount(draws, minlength=6).double() / n
    probs = torch.softmax(logits[0].double() / temperature, 0)
    assert (freq - probs).abs().max() < 0.01
    big = torch.randn(5, 256)
    assert torch.equal(categorical_sample(big, torch.rand(5), argmax=True), big.argmax(-1))


def test_logistic_mixture_sample():
    weights, means, log_scales = [0.0, math.log(3.0)], [-0.5, 0.4], [math.log(0.02), math.log(0.05)]
    logits = mixture_logits(weights, means, log_scales)[..., 0].float()  # (1, 6)
    assert logistic_mixture_sample(logits, None, argmax=True).item() == pytest.approx(0.4)
    # u2 = 0.5 is the chosen component's mean; u1 picks the component by inverse CDF
    assert logistic_mixture_sample(logits, torch.tensor([[0.1, 0.5]])).item() == pytest.approx(-0.5)
    assert logistic_mixture_sample(logits, torch.tensor([[0.3, 0.5]])).item() == pytest.approx(0.4)
    n = 40_000
    torch.manual_seed(0)
    u = torch.rand(n, 2)
    x = logistic_mixture_sample(logits.expand(n, 6), u)
    assert torch.equal(x, logistic_mixture_sample(logits.expand(n, 6), u))
    right = x > 0
    assert right.double().mean().item() == pytest.approx(0.75, abs=0.01)
    assert x[right].mean().item() == pytest.approx(0.4, abs=0.005)
    assert x[right].var().item() == pytest.approx(0.05**2 * math.pi**2 / 3, rel=0.1)
    cooler = logistic_mixture_sample(logits.expand(n, 6), u, temperature=0.5)
    assert cooler[cooler > 0].var().item() == pytest.approx(0.025**2 * math.pi**2 / 3, rel=0.1)
    assert (
        logistic_mixture_sample(mixture_logits([0.0], [0.99], [0.0])[..., 0], torch.tensor([[0.5, 0.99999]])).item()
        == 1.0
    )


def test_model_sample_matches_its_distribution():
    model = tiny(output="logistic_mixture", mixtures=3)
    assert model.sample(torch.randn(4, 9), torch.rand(4, 2)).shape == (4,)
    model = tiny()
    logits = torch.randn(4, 256)
    assert torch.equal(model.sample(logits, torch.rand(4), argmax=True), logits.argmax(-1))


# -- learning ------------------------------------------------------------------------------------


def sine(T, freq=0.05, amp=0.6):
    return (amp * torch.sin(2 * math.pi * freq * torch.arange(T, dtype=torch.float32)))[None]


def train(model, audio, steps, lr):
    x = mulaw_encode(audio)
    frames = audio.shape[1] // model.hop
    c = torch.randn(1, model.cond_channels, frames, generator=torch.Generator().manual_seed(0))
    g = torch.ones(1, model.speaker_dim) if model.speaker_dim else None
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        loss = model.loss(model(x, c, g), audio)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def test_tiny_wavenet_overfits_a_mu_law_sequence():
    torch.manual_seed(0)
    model = WaveNet(4, 16, **{**TINY, "residual_channels": 16, "gate_channels": 32, "skip_channels": 32})
    audio = sine(512) + 0.05 * torch.randn(1, 512, generator=torch.Generator().manual_seed(1))
    losses = train(model, audio.clamp(-1, 1), 100, 1e-2)
    assert losses[0] == pytest.approx(math.log(256), rel=0.2)
    assert min(losses[-5:]) < 0.4 * losses[0]


def test_logistic_mixture_trains_on_a_sine():
    torch.manual_seed(0)
    model = WaveNet(4, 16, **TINY, output="logistic_mixture", mixtures=3, upsample="transposed")
    losses = train(model, sine(512), 60, 5e-3)
    assert all(math.isfinite(v) for v in losses)
    assert np.mean(losses[-5:]) < losses[0] - 1.0  # about 11.7 -> 8.8 nats
