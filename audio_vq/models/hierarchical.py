"""A two-level hierarchy of codes (VQ-VAE-2, Razavi et al. 2019, here for audio): a coarse top
level at a lower frame rate and a detailed bottom level conditioned on it.

    z_e (B, D, T)                      the bottom encoder's output, at the encoder's frame rate
      -> top encoder (strided convs, r = prod(top_strides)) -> z_t (B, D, ceil(T / r))
      -> top VQ -> e_t, held over the r frames each top frame spans -> h_t (B, D, T)
    bottom VQ input = 1x1 conv of [z_e; h_t] (B, 2D, T): the bottom is conditioned on the top
      -> bottom VQ -> e_b (B, D, T)
    z_q = [h_t; e_b] (B, 2D, T): the WaveNet is conditioned on both levels

Codes are (B, 2, T) at the finest rate: row 0 is the top level's code held over the r frames it
spans (``level_ratios`` (r, 1): the top's own rate is frame rate / r), row 1 the bottom's. The
direction is the paper's: the top codes depend on the audio alone, never on the bottom level,
so a prior can model the top level alone and the bottom level given it. The bottom level needs
the top one to decode, so one level alone does not decode (``min_levels`` 2).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from .encoder import Encoder
from .quantizer import QuantizerOutput, VectorQuantizer, check_codes, check_input

DEFAULT_TOP_STRIDES = (2, 2, 2)  # 8x the bottom's hop
LEVELS = 2  # top, bottom


class HierarchicalQuantizer(nn.Module):
    """The top encoder, the top and bottom vector quantizers and the bottom's conditioning.

    Args:
        dim: D, channels of z_e (B, D, T) and of each level's codes.
        codebook_size: K of both levels.
        top_strides: strides of the top encoder over the bottom's frames; their product r is
            how many bottom frames one top code spans.
        top_channels: hidden channels of the top encoder's strided layers.
        top_kernel_sizes: their windows (None: 2 x stride, as the bottom encoder's).
        top_residual_layers: non-strided residual blocks after the top encoder's strided stack.
        **level_options: VectorQuantizer's keyword options (ema, kmeans_init, restart_after,
            commitment_weight, ...), the same for both levels.

    forward's losses are the two levels' sums; perplexity and usage their means.
    """

    num_quantizers = min_levels = LEVELS

    def __init__(
        self,
        dim: int,
        codebook_size: int,
        *,
        top_strides: Sequence[int] = DEFAULT_TOP_STRIDES,
        top_channels: int = 64,
        top_kernel_sizes: Sequence[int] | None = None,
        top_residual_layers: int = 0,
        **level_options,
    ):
        super().__init__()
        self.dim, self.codebook_size, self.output_dim = dim, codebook_size, LEVELS * dim
        self.top_encoder = Encoder(
            dim=dim,
            channels=top_channels,
            strides=top_strides,
            kernel_sizes=top_kernel_sizes,
            residual_layers=top_residual_layers,
            in_channels=dim,
        )
        self.ratio = self.top_encoder.hop
        self.level_ratios = (self.ratio, 1)
        # a bottom frame's code depends on its top code, hence on the top encoder's field
        # (in bottom frames, centred on the r frames of its top frame)
        self.context_frames = self.top_encoder.receptive_field // 2 + self.ratio
        self.bottom_conditioning = nn.Conv1d(LEVELS * dim, dim, 1)
        self.levels = nn.ModuleList(VectorQuantizer(dim, codebook_size, **level_options) for _ in range(LEVELS))

    @property
    def top(self) -> VectorQuantizer:
        return self.levels[0]

    @property
    def bottom(self) -> VectorQuantizer:
        return self.levels[1]

    def extra_repr(self) -> str:
        return f"ratio={self.ratio}"

    def forward(self, z: Tensor, mask: Tensor | None = None) -> QuantizerOutput:
        """z (B, D, T), mask (B, T) bool (True = real frame, a prefix of each row) ->
        QuantizerOutput with quantized (B, 2D, T) and codes (B, 2, T), the top's held."""
        batch, frames, _ = check_input(z, self.dim, mask)
        lengths = None if mask is None else mask.sum(dim=-1)
        z_top = self.top_encoder(z, lengths)  # (B, D, ceil(T / r))
        top_mask = None if mask is None else self._top_mask(mask, z_top.shape[-1])
        top = self.top(z_top, top_mask)
        held = self.hold(top.quantized, frames).to(z.dtype)
        bottom = self.bottom(self.bottom_conditioning(torch.cat([z, held], dim=1)), mask)
        quantized = torch.cat([held, bottom.quantized.to(z.dtype)], dim=1)
        codes = torch.cat([self.hold(top.codes, frames), bottom.codes], dim=1)
        return QuantizerOutput.of_levels([top, bottom], quantized, codes)

    def lookup(self, codes: Tensor) -> Tensor:
        """codes (B, 2, T), the top's held over its r frames -> z_q (B, 2D, T) fp32, bit for
        bit what an eval forward returned as ``quantized``."""
        check_codes(codes, LEVELS)
        if codes.shape[1] != LEVELS:
            raise ValueError(
                f"a hierarchical model decodes from both levels (top, bottom): codes must be "
                f"(B, {LEVELS}, T), got shape {tuple(codes.shape)}"
            )
        frames = codes.shape[-1]
        top = codes[:, :1, :: self.ratio]  # (B, 1, ceil(T / r))
        if not torch.equal(self.hold(top, frames), codes[:, :1]):
            raise ValueError(f"level 0 (the top) must hold one code over each group of {self.ratio} frames")
        return torch.cat([self.hold(self.top.lookup(top), frames), self.bottom.lookup(codes[:, 1:])], dim=1)

    def hold(self, x: Tensor, frames: int) -> Tensor:
        """x (B, C, ceil(T / r)) at the top's rate -> (B, C, T): each top frame repeated over
        the r bottom frames it spans."""
        return x.repeat_interleave(self.ratio, dim=-1)[..., :frames]

    def _top_mask(self, mask: Tensor, top_frames: int) -> Tensor:
        """(B, ceil(T / r)) bool: the top frames spanning any real bottom frame."""
        pad = top_frames * self.ratio - mask.shape[-1]
        padded = torch.nn.functional.pad(mask, (0, pad), value=False)
        return padded.view(mask.shape[0], top_frames, self.ratio).any(dim=-1)
