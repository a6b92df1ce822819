"""Encoder: frame counts for any length, frame-to-sample alignment, strides and kernels."""

import pytest
import torch

from audio_vq.models.encoder import Encoder


@pytest.mark.parametrize("samples", [1, 63, 64, 65, 127, 1000, 16_001])
def test_frames_are_ceil_of_samples_over_hop(samples):
    enc = Encoder(dim=8, channels=4)
    assert enc.hop == 64
    z = enc(torch.randn(2, samples))
    assert z.shape == (2, 8, -(-samples // 64)) == (2, 8, enc.num_frames(samples))


def test_phoneme_setup_strides_multiply_to_640():
    enc = Encoder(dim=4, channels=[4, 4, 4, 4, 4, 4], strides=[2, 2, 2, 2, 5, 8], residual_layers=2)
    assert enc.hop == 640
    assert enc(torch.randn(1, 1, 16_000)).shape == (1, 4, 25)
    assert enc(torch.randn(1, 1, 16_001)).shape == (1, 4, 26)


def receptive_span(enc, frame, samples, draws=4):
    """The first and last input sample with a non-zero gradient on z[..., frame] (over a few
    random inputs: one input's dead ReLUs could hide part of the span)."""
    x = torch.randn(draws, samples, requires_grad=True)
    enc(x)[:, :, frame].sum().backward()
    nonzero = torch.nonzero(x.grad.abs().sum(0)).flatten()
    return int(nonzero.min()), int(nonzero.max())


@pytest.mark.parametrize("strides", [[2, 2, 2], [4, 2], [5, 3], [2, 2, 2, 2, 2, 2]])
def test_frame_i_is_centred_on_its_hop_window(strides):
    torch.manual_seed(0)
    enc = Encoder(dim=8, channels=32, strides=strides)
    hop = enc.hop
    frame = 8
    first, last = receptive_span(enc, frame, 20 * hop)
    window_start, window_end = frame * hop, (frame + 1) * hop - 1
    assert first <= window_start and last >= window_end  # covers its window
    # equal context either side of the window: the default kernels split their padding evenly
    assert window_start - first == last - window_end
    assert last - first + 1 <= enc.receptive_field  # what windowed extraction budgets for


def test_bad_configs_are_refused():
    with pytest.raises(ValueError, match="skip input samples"):
        Encoder(strides=[4], kernel_sizes=[2])
    with pytest.raises(ValueError, match="one entry per stride"):
        Encoder(channels=[8, 8], strides=[2, 2, 2])
    with pytest.raises(ValueError, match="expects input"):
        Encoder(dim=2, channels=2)(torch.randn(1, 2, 128))


def test_an_utterance_encodes_the_same_alone_and_padded_in_a_batch():
    torch.manual_seed(0)
    enc = Encoder(dim=6, channels=8, strides=[2, 2, 2], residual_layers=1)
    short, long = torch.randn(1, 203), torch.randn(1, 330)
    alone = enc(short)
    batch = torch.cat([torch.cat([short, torch.zeros(1, 127)], dim=1), long])
    both = enc(batch, lengths=torch.tensor([203, 330]))
    torch.testing.assert_close(both[:1, :, : alone.size(-1)], alone, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(both[1:], enc(long), rtol=1e-5, atol=1e-5)
    # without lengths the padding would leak into the last frames
    assert not torch.allclose(enc(batch)[:1, :, : alone.size(-1)], alone, atol=1e-3)


@pytest.mark.parametrize("strides", [[2, 2, 2], [3, 5]])  # even and odd strides (explicit padding)
def test_inference_path_equals_the_autograd_path(strides):
    """Without autograd the encoder masks and rectifies in place; the values must not change."""
    torch.manual_seed(0)
    enc = Encoder(dim=8, channels=16, strides=strides, residual_layers=1)
    audio = torch.randn(3, 1000)
    before = audio.clone()
    lengths = torch.tensor([1000, 517, 31])
    with_grad = enc(audio, lengths)
    with torch.no_grad():
        without = enc(audio, lengths)
    assert torch.allclose(with_grad, without, atol=1e-6)
    assert torch.equal(audio, before)  # the caller's input is never changed in place
