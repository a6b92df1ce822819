"""Residual vector quantization (SoundStream, Zeghidour et al. 2021; EnCodec; DAC): Q vector
quantizers in a row, each quantizing what the ones before it left over.

    r_0 = z_e;  q_l = VQ_l(r_l);  r_(l+1) = r_l - q_l;  z_q = q_0 + ... + q_(n-1)

Codes are (B, Q, T): row l holds level l's codes, and the first n rows alone decode (the sum of
their vectors), so one model serves Q bitrates. Every level is a :class:`VectorQuantizer` with
its own codebook and all of its care (EMA, k-means initialisation, restarts, DDP sync).

Quantizer dropout (SoundStream): in training, a fraction ``quantizer_dropout`` of the batch's
utterances is quantized with a random number of levels n ~ U{1..Q} and the rest with all Q, so
that every prefix of levels learns to decode on its own. Every level still runs on every step
(a dropped utterance's frames are masked out of its codebook statistics and losses), so all
DDP ranks make the same collective calls whatever their draws.

The straight-through value of q_l is its code vector exactly, so r_(l+1) carries no gradient:
the reconstruction trains the encoder through level 0's identity, and level l's commitment
loss pulls only on the codebook care of that level (as in EnCodec's implementation).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .quantizer import QuantizerOutput, VectorQuantizer, check_codes, check_input

DEFAULT_LEVELS = 4


class ResidualVectorQuantizer(nn.Module):
    """Q vector quantizers over successive residuals.

    Args:
        dim: D, channels of z (B, D, T).
        codebook_size: K of every level.
        num_quantizers: Q, the levels.
        quantizer_dropout: fraction of each training batch quantized with a random number of
            levels (uniform in 1..Q) instead of all Q; 0 = always all.
        **level_options: VectorQuantizer's keyword options (commitment_weight, ema, kmeans_init,
            restart_after, cosine, lookup_dim, ...), the same for every level.

    forward's loss and codebook/commitment losses are the levels' sums; perplexity and usage
    their means over levels; dead_codes and restarted their sums.
    """

    def __init__(
        self,
        dim: int,
        codebook_size: int,
        *,
        num_quantizers: int = DEFAULT_LEVELS,
        quantizer_dropout: float = 0.0,
        **level_options,
    ):
        super().__init__()
        if int(num_quantizers) != num_quantizers or num_quantizers < 1:
            raise ValueError(f"num_quantizers must be an integer >= 1, got {num_quantizers!r}")
        if not 0.0 <= quantizer_dropout <= 1.0:
            raise ValueError(f"quantizer_dropout must be in [0, 1], got {quantizer_dropout}")
        self.dim, self.codebook_size = dim, codebook_size
        self.num_quantizers, self.quantizer_dropout = int(num_quantizers), float(quantizer_dropout)
        self.levels = nn.ModuleList(
            VectorQuantizer(dim, codebook_size, **level_options) for _ in range(self.num_quantizers)
        )
        # the bottleneck contract (quantizer.py): every level at the encoder's frame rate
        self.min_levels, self.level_ratios, self.context_frames = 1, (1,) * self.num_quantizers, 0
        self.output_dim = dim

    def extra_repr(self) -> str:
        return f"num_quantizers={self.num_quantizers}, quantizer_dropout={self.quantizer_dropout}"

    def active_levels(self, batch: int, device: torch.device) -> Tensor:
        """(B,) int64: how many levels quantize each utterance of a batch (quantizer dropout in
        training; all Q otherwise)."""
        q = self.num_quantizers
        active = torch.full((batch,), q, dtype=torch.long, device=device)
        if self.training and self.quantizer_dropout > 0 and q > 1:
            dropped = torch.rand(batch, device=device) < self.quantizer_dropout
            active = torch.where(dropped, torch.randint(1, q + 1, (batch,), device=device), active)
        return active

    def forward(self, z: Tensor, mask: Tensor | None = None) -> QuantizerOutput:
        """z (B, D, T), mask (B, T) bool (True = real frame) -> QuantizerOutput with codes (B, Q, T)."""
        batch, frames, _ = check_input(z, self.dim, mask)
        frame_mask = torch.ones(batch, frames, dtype=torch.bool, device=z.device) if mask is None else mask.bool()
        active = self.active_levels(batch, z.device)
        # the residuals in fp32 (the levels quantize in fp32 anyway): under autocast a bf16
        # residual would lose the small leftovers that the later levels are there to code
        residual, quantized, outs = z.float(), None, []
        for index, level in enumerate(self.levels):
            on = active > index  # (B,): the utterances this level quantizes
            out = level(residual, frame_mask & on[:, None])
            q = torch.where(on[:, None, None], out.quantized, 0.0)
            quantized = q if quantized is None else quantized + q
            residual = residual - q
            outs.append(out)
        return QuantizerOutput.of_levels(outs, quantized.to(z.dtype), torch.cat([o.codes for o in outs], dim=1))

    def lookup(self, codes: Tensor) -> Tensor:
        """codes (B, n, T), n <= Q: the first n levels -> (B, D, T) fp32, the sum of their
        vectors (bit for bit what an eval forward returned as ``quantized`` when n = Q)."""
        check_codes(codes, self.num_quantizers)
        out = None
        for index in range(codes.shape[1]):
            e = self.levels[index].lookup(codes[:, index : index + 1])
            out = e if out is None else out + e
        return out
