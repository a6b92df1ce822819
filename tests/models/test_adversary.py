"""The speaker adversary and the corrupted teacher-forced past: mechanisms, not outcomes."""

import pytest
import torch

from audio_vq.audio import mulaw_encode
from audio_vq.models.adversary import SpeakerAdversary, reverse_gradient
from audio_vq.models.vqvae import VQVAE, corrupt_past

TINY = {
    "encoder": {"channels": 16, "strides": [2, 2, 2, 2], "residual_layers": 0},
    "quantizer": {"kind": "vector", "dim": 8, "codebook_size": 16},
    "decoder": {
        "stacks": 1,
        "layers_per_stack": 4,
        "residual_channels": 16,
        "gate_channels": 32,
        "skip_channels": 32,
        "speaker_dim": 4,
    },
}


def tiny(**extra):
    torch.manual_seed(0)
    return VQVAE.from_config({**TINY, **extra}, num_speakers=3)


def test_reverse_gradient_is_identity_forward_and_negated_scaled_backward():
    x = torch.randn(5, requires_grad=True)
    y = reverse_gradient(x, 0.3)
    assert torch.equal(y, x)
    (y * torch.arange(5.0)).sum().backward()
    assert torch.allclose(x.grad, -0.3 * torch.arange(5.0))


def test_the_adversary_gradient_reaches_the_encoder_reversed_and_the_classifier_plainly():
    weight = 0.5
    model = tiny(adversary={"weight": weight, "hidden_channels": 8})
    assert isinstance(model.adversary, SpeakerAdversary)
    audio = torch.randn(2, 256) * 0.1
    speaker = torch.tensor([0, 2])
    out = model(audio, speaker)
    model.zero_grad()
    out.adversary_loss.backward()
    reversed_enc = [p.grad.clone() for p in model.encoder.parameters()]
    reversed_cls = [p.grad.clone() for p in model.adversary.classifier.parameters()]
    assert any(g.abs().sum() > 0 for g in reversed_enc)
    # the same cross-entropy without the reversal: the encoder's gradient flips sign and loses the
    # weight, the classifier's is the same
    model.zero_grad()
    q = model.quantizer(model.encoder(audio))
    logits = model.adversary.classifier(q.quantized)
    ce = torch.nn.functional.cross_entropy(logits, speaker[:, None].expand(-1, logits.shape[-1]))
    ce.backward()
    assert ce.item() == pytest.approx(out.adversary_loss.item(), rel=1e-5)
    for r, plain in zip(reversed_enc, (p.grad for p in model.encoder.parameters())):
        assert torch.allclose(r, -weight * plain, atol=1e-6)
    for r, plain in zip(reversed_cls, (p.grad for p in model.adversary.classifier.parameters())):
        assert torch.allclose(r, plain, atol=1e-6)
    # and it is part of the total loss and the logged metrics
    m = out.metrics()
    assert {"adversary_loss", "adversary_accuracy"} <= set(m)
    assert out.loss.item() == pytest.approx((out.reconstruction_loss + out.quantizer.loss + out.adversary_loss).item())


def test_no_adversary_unless_weighted():
    assert tiny().adversary is None
    assert tiny(adversary={"weight": 0.0, "hidden_channels": 8}).adversary is None
    assert "adversary_loss" not in tiny()(torch.randn(1, 64) * 0.1, torch.tensor([0])).metrics()


def test_corrupt_past_noise_and_dropout():
    x = torch.full((2, 1000), 0.5)
    assert corrupt_past(x, 0.0, 0.0) is x
    noisy = corrupt_past(x, 0.1, 0.0, torch.Generator().manual_seed(0))
    assert 0.08 < float((noisy - x).std()) < 0.12 and float(noisy.abs().max()) <= 1
    dropped = corrupt_past(x, 0.0, 0.25, torch.Generator().manual_seed(0))
    assert 0.2 < float((dropped == 0).float().mean()) < 0.3 and set(dropped.unique().tolist()) == {0.0, 0.5}


@pytest.mark.parametrize("extra", [{"input_noise": 0.05}, {"input_dropout": 0.3}])
def test_corrupted_past_only_in_training_and_the_loss_is_on_clean_audio(extra):
    model = tiny(**extra)
    seen = {}
    forward, loss = model.decoder.forward, model.decoder.loss

    def spy_forward(x, c, g=None, e=None):
        seen["inputs"] = x
        return forward(x, c, g, e)

    def spy_loss(logits, x_audio, mask=None):
        seen["target"] = x_audio
        return loss(logits, x_audio, mask)

    model.decoder.forward, model.decoder.loss = spy_forward, spy_loss
    audio = torch.randn(2, 256) * 0.1
    clean = mulaw_encode(audio, model.decoder.mu_law_channels)
    model.train()
    model(audio, torch.tensor([0, 1]))
    assert not torch.equal(seen["inputs"], clean) and torch.equal(seen["target"], audio)
    model.eval()
    model(audio, torch.tensor([0, 1]))
    assert torch.equal(seen["inputs"], clean) and torch.equal(seen["target"], audio)


def test_bad_values_are_refused():
    with pytest.raises(ValueError, match="input_dropout"):
        tiny(input_dropout=1.0)
    with pytest.raises(ValueError, match="input_noise"):
        tiny(input_noise=-0.1)
