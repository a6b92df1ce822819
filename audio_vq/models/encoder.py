"""The encoder: strided 1-D convolutions from the waveform to z_e at the frame rate.

The paper's audio encoder is 6 convolutions of stride 2 and window 4 (64x fewer frames); any
list of strides works, its product being the hop (e.g. 640 for the 25 Hz phoneme setup).

Frame alignment: the input is right-padded with zeros to a multiple of the hop, so
``frames = ceil(samples / hop)``, and every convolution pads symmetrically (kernel - stride
samples in all) so that frame ``i`` is centred on samples ``[i * hop, (i + 1) * hop)``: its
receptive field covers that window plus equal context on both sides. The decoder relies on the
same convention: frame ``i`` conditions exactly those ``hop`` samples.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

PAPER_STRIDES = (2, 2, 2, 2, 2, 2)  # 64x: 250 frames/s at 16 kHz
KERNEL_PER_STRIDE = 2  # the paper's window 4 for stride 2: each output sees two strides of input
RESIDUAL_KERNEL_SIZE = 3


def default_kernel_size(stride: int) -> int:
    """2 x stride (the paper's 4 for stride 2), plus one for odd strides so that the padding
    (kernel - stride) splits evenly and frames stay exactly centred on their hop windows."""
    return KERNEL_PER_STRIDE * stride + stride % 2


class ResidualBlock(nn.Module):
    """ReLU -> conv k=3 -> ReLU -> conv k=1, plus the input: (B, C, T) -> (B, C, T)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv1d(channels, channels, RESIDUAL_KERNEL_SIZE, padding=RESIDUAL_KERNEL_SIZE // 2)
        self.proj = nn.Conv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.proj(F.relu(self.conv(F.relu(x))))


class StridedConv(nn.Module):
    """Conv1d that maps T samples to exactly T / stride frames (T a multiple of stride),
    padding kernel - stride samples split evenly (the extra one on the right when odd)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int):
        super().__init__()
        if kernel_size < stride:
            raise ValueError(f"kernel_size {kernel_size} < stride {stride} would skip input samples")
        self.pad = ((kernel_size - stride) // 2, kernel_size - stride - (kernel_size - stride) // 2)
        symmetric = self.pad[0] == self.pad[1]
        # symmetric padding happens inside the convolution: no padded copy of the input (the
        # copy was a fifth of the encoder's time at inference); odd cases pad explicitly
        self.conv = nn.Conv1d(
            in_channels, out_channels, kernel_size, stride=stride, padding=self.pad[0] if symmetric else 0
        )
        self.explicit_pad = None if symmetric else self.pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x if self.explicit_pad is None else F.pad(x, self.explicit_pad))


class Encoder(nn.Module):
    """Waveform (B, T) or (B, 1, T) -> z_e (B, dim, ceil(T / hop)); with ``in_channels`` C > 1,
    features (B, C, T) -> (B, dim, ceil(T / hop)) (the hierarchy's top encoder reads the
    bottom's z_e).

    Args:
        dim: output channels D (the quantizer's input dimension).
        channels: hidden channels of every strided layer (int) or one per layer (list).
        strides: stride of each layer; their product is the hop.
        kernel_sizes: window of each layer; None = :func:`default_kernel_size` of its stride.
        residual_layers: non-strided residual blocks after the strided stack.
        in_channels: channels of the input (1: a waveform).
    """

    def __init__(
        self,
        dim: int = 64,
        channels: int | Sequence[int] = 128,
        strides: Sequence[int] = PAPER_STRIDES,
        kernel_sizes: Sequence[int] | None = None,
        residual_layers: int = 0,
        in_channels: int = 1,
    ):
        super().__init__()
        strides = [int(s) for s in strides]
        if not strides or any(s < 1 for s in strides):
            raise ValueError(f"strides must be a non-empty list of positive integers, got {strides}")
        widths = [int(channels)] * len(strides) if isinstance(channels, int) else [int(c) for c in channels]
        kernels = [default_kernel_size(s) for s in strides] if kernel_sizes is None else [int(k) for k in kernel_sizes]
        if len(widths) != len(strides) or len(kernels) != len(strides):
            raise ValueError(f"channels ({widths}) and kernel_sizes ({kernels}) need one entry per stride ({strides})")
        self.strides = tuple(strides)
        self.hop = math.prod(strides)
        self.dim = dim
        self.in_channels = int(in_channels)
        ins = [self.in_channels] + widths[:-1]
        self.strided = nn.ModuleList(StridedConv(i, o, k, s) for i, o, k, s in zip(ins, widths, kernels, strides))
        self.residual = nn.ModuleList(ResidualBlock(widths[-1]) for _ in range(residual_layers))
        self.proj = nn.Conv1d(widths[-1], dim, 1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """He initialisation (fan-in, ReLU gain) so z_e keeps the waveform's scale through the
        stack; PyTorch's default shrinks it about 3x per layer, leaving z_e ~1e-3 for speech,
        where the codes crowd together and the decoder learns to ignore them."""
        for m in self.modules():
            if isinstance(m, nn.Conv1d):
                last = m is self.proj or any(m is b.proj for b in self.residual)
                nn.init.kaiming_normal_(m.weight, nonlinearity="linear" if last else "relu")
                nn.init.zeros_(m.bias)

    @property
    def receptive_field(self) -> int:
        """Input samples that one output frame depends on (its strided convs and kernel-3
        residual blocks), centred on the frame's hop window."""
        field, jump = 1, 1
        for conv in self.strided:
            field += (conv.conv.kernel_size[0] - 1) * jump
            jump *= conv.conv.stride[0]
        for block in self.residual:
            field += (block.conv.kernel_size[0] - 1) * jump
        return field

    def num_frames(self, num_samples: int) -> int:
        """Frames for an input of ``num_samples``: ceil(num_samples / hop)."""
        return -(-int(num_samples) // self.hop)

    def forward(self, audio: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """audio (B, T) or (B, 1, T) (features (B, in_channels, T)); lengths (B,) real samples
        (frames) per row (None = all T).

        Features past each row's real length are zeroed after every layer, so they look to the
        next layer exactly like its zero padding: an utterance encodes to the same frames alone
        or padded inside a batch of longer ones."""
        if audio.dim() == 2 and self.in_channels == 1:
            audio = audio.unsqueeze(1)
        if audio.dim() != 3 or audio.size(1) != self.in_channels:
            expected = "(B, T) or (B, 1, T)" if self.in_channels == 1 else f"(B, {self.in_channels}, T)"
            raise ValueError(f"encoder expects input {expected}, got {tuple(audio.shape)}")
        if lengths is None:
            lengths = torch.full((audio.size(0),), audio.size(-1), device=audio.device)
        pad = self.num_frames(audio.size(-1)) * self.hop - audio.size(-1)
        h = F.pad(audio, (0, pad)) * _valid(lengths, audio.size(-1) + pad)
        # Without autograd the layers' own outputs are updated in place (ReLU, zeroed tails):
        # no extra full-size tensors. With autograd, the out-of-place mask keeps backward simple.
        inplace = not torch.is_grad_enabled()
        mask = _zero_tails_ if inplace else _masked
        rows = lengths.tolist() if inplace else lengths  # one device sync, not one per layer
        scale = 1
        for i, conv in enumerate(self.strided):
            scale *= self.strides[i]
            h = conv(h)
            if i < len(self.strided) - 1:  # the last ReLU is the residual blocks' / projection's
                h = F.relu(h, inplace=inplace)
            h = mask(h, rows, scale)
        for block in self.residual:
            h = mask(block(h), rows, scale)
        return self.proj(F.relu(h, inplace=inplace))


def _masked(h: torch.Tensor, lengths: torch.Tensor, scale: int) -> torch.Tensor:
    """h (B, C, T) with frames at or past ceil(lengths[b] / scale) zeroed (a new tensor)."""
    return h * _valid(-(-lengths // scale), h.size(-1))


def _zero_tails_(h: torch.Tensor, lengths: list[int], scale: int) -> torch.Tensor:
    """The same in place, touching only each row's padded tail."""
    for row, n in enumerate(lengths):
        valid = -(-n // scale)
        if valid < h.size(-1):
            h[row, :, valid:] = 0
    return h


def _valid(lengths: torch.Tensor, size: int) -> torch.Tensor:
    """(B, 1, size) float mask: 1 at positions < lengths[b]."""
    return (torch.arange(size, device=lengths.device)[None, :] < lengths[:, None]).unsqueeze(1).float()
