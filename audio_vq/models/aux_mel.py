"""An auxiliary frame-rate decoder: the decoder's local conditioning (the latents, and a pitch
model's pitch features) and the speaker -> the log-mel spectrogram of each frame, trained with
an L1 loss (``model.aux_mel_weight``). Its gradient reaches the encoder directly through the
straight-through latents, instead of only through the WaveNet's teacher-forced likelihood,
whose speaker and content signal is weak at the step counts a CPU allows (issue 28). Only
training uses it: nothing at inference reads its output.

Frames follow the encoder's convention: frame i of the target describes samples [i * hop,
(i + 1) * hop), its analysis window (MEL_WINDOW_HOPS hops) centred there.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

MEL_WINDOW_HOPS = 2  # the analysis window and FFT size, in hops (640 samples, 40 ms, at the small model's hop)
LOG_FLOOR = 1e-5  # added to the mel energies before the log (about -100 dB)


class LogMel(nn.Module):
    """log(mel filterbank energies + LOG_FLOOR) (B, n_mels, ceil(T / hop)) of audio (B, T),
    one frame per encoder frame (a Hann window of MEL_WINDOW_HOPS hops centred on each)."""

    def __init__(self, hop: int, sample_rate: int, n_mels: int):
        super().__init__()
        import librosa

        self.hop = hop
        self.n_fft = MEL_WINDOW_HOPS * hop
        fb = librosa.filters.mel(sr=sample_rate, n_fft=self.n_fft, n_mels=n_mels, fmin=0.0, fmax=sample_rate / 2)
        self.register_buffer("filters", torch.from_numpy(fb).float(), persistent=False)  # (n_mels, n_fft/2 + 1)
        self.register_buffer("window", torch.hann_window(self.n_fft), persistent=False)

    def forward(self, audio: Tensor) -> Tensor:
        frames = -(-audio.shape[1] // self.hop)
        left = (self.n_fft - self.hop) // 2  # frame i's window centred on the middle of its hop
        right = frames * self.hop - audio.shape[1] + self.n_fft - self.hop - left
        padded = F.pad(audio.float(), (left, right))
        spec = torch.stft(padded, self.n_fft, self.hop, window=self.window, center=False, return_complex=True)
        power = spec.real**2 + spec.imag**2  # (B, n_fft/2 + 1, frames)
        return torch.log(torch.matmul(self.filters, power[:, :, :frames]) + LOG_FLOOR)


class MelDecoder(nn.Module):
    """(B, in_channels, frames) local conditioning + speaker vectors (B, speaker_dim) -> log-mel
    (B, n_mels, frames): a 1x1 input projection plus the speaker's, ``layers`` residual
    non-causal conv blocks of width ``channels``, a 1x1 output projection.

    Args:
        in_channels: the WaveNet's cond_channels (latents and pitch features).
        speaker_dim: 0 = no speaker input.
        n_mels: mel bands of the target.
        channels, layers, kernel_size (odd): the conv stack.
    """

    def __init__(
        self,
        in_channels: int,
        speaker_dim: int,
        n_mels: int = 80,
        channels: int = 128,
        layers: int = 3,
        kernel_size: int = 5,
    ):
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"aux_mel kernel_size must be odd (centred), got {kernel_size}")
        self.input = nn.Conv1d(in_channels, channels, 1)
        self.speaker = nn.Linear(speaker_dim, channels, bias=False) if speaker_dim > 0 else None
        self.convs = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel_size, padding=kernel_size // 2) for _ in range(layers)
        )
        self.output = nn.Conv1d(channels, n_mels, 1)
        self.residual_scale = math.sqrt(0.5)

    def forward(self, c: Tensor, g: Tensor | None) -> Tensor:
        h = self.input(c)
        if self.speaker is not None:
            h = h + self.speaker(g).unsqueeze(-1)
        for conv in self.convs:
            h = (h + conv(F.relu(h))) * self.residual_scale
        return self.output(F.relu(h))


def masked_l1(prediction: Tensor, target: Tensor, frame_mask: Tensor | None) -> Tensor:
    """Mean |prediction - target| over the bands of the frames where ``frame_mask`` (B, frames)
    is True (all when None)."""
    err = (prediction.float() - target).abs().mean(dim=1)  # (B, frames)
    if frame_mask is None:
        return err.mean()
    return (err * frame_mask).sum() / frame_mask.sum().clamp(min=1)
