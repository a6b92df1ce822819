"""Contrastive predictive coding on the quantized latents (VQ-CPC, van Niekerk et al. 2020): a
direct learning signal for the encoder (issue 28), beside the WaveNet's teacher-forced one.

A causal context network (a GRU) reads the latents z_q up to frame t; for each of ``steps``
offsets k a linear map predicts z_q[t + k] from its state c_t, and an InfoNCE loss asks the
prediction to score the true future frame above ``negatives`` frames drawn at random from the
same crop. Negatives from the same crop share its speaker and channel, so what tells the true
frame apart is what changes within an utterance: its content, which is what the units should
hold. The gradient reaches the encoder through the straight-through latents. Only training
uses it: nothing at inference reads the context network.

Shapes: z (B, D, frames) as the quantizer returns it; frame_mask (B, frames), True on the real
frames, a prefix of each row (None = all real).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class CPCLoss(nn.Module):
    """InfoNCE of predicting z_q[t + k] (k = 1..steps) from a GRU's state over z_q[:t + 1].

    Args:
        dim: D, the latents' channels (the quantizer's output_dim).
        context_channels: the GRU's hidden size.
        steps: how many frames ahead are predicted (one linear map each).
        negatives: frames drawn (uniformly, with replacement, from the real frames of the same
            crop) against each true future frame.
    """

    def __init__(self, dim: int, context_channels: int = 128, steps: int = 6, negatives: int = 16):
        super().__init__()
        if steps < 1 or negatives < 1:
            raise ValueError(f"cpc steps and negatives must be at least 1, got {steps} and {negatives}")
        self.context = nn.GRU(dim, context_channels, batch_first=True)
        self.predictors = nn.ModuleList(nn.Linear(context_channels, dim, bias=False) for _ in range(steps))
        self.negatives = negatives

    def forward(self, z: Tensor, frame_mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(loss, accuracy): the mean InfoNCE over every (row, t, k) whose t + k is a real frame,
        and the share of those where the true frame scores highest (chance: 1 / (negatives + 1))."""
        B, _, N = z.shape
        zt = z.transpose(1, 2)  # (B, N, D)
        lengths = (frame_mask.sum(1) if frame_mask is not None else torch.full((B,), N, device=z.device)).long()
        c, _ = self.context(zt)  # (B, N, C): c[:, t] has read frames 0..t
        total, hits, count = z.new_zeros(()), z.new_zeros(()), 0
        for k, predictor in enumerate(self.predictors, start=1):
            if N <= k:
                break
            prediction = predictor(c[:, : N - k])  # (B, N - k, D)
            future = zt[:, k:]  # (B, N - k, D): the true frame k ahead
            draw = torch.rand(B, N - k, self.negatives, device=z.device)
            index = (draw * lengths.clamp(min=1).view(B, 1, 1)).long()  # (B, N - k, M), real frames only
            negative = torch.gather(
                zt.unsqueeze(1).expand(B, N - k, N, zt.shape[-1]),
                2,
                index.unsqueeze(-1).expand(-1, -1, -1, zt.shape[-1]),
            )  # (B, N - k, M, D)
            scores = torch.cat(
                [(prediction * future).sum(-1, keepdim=True), torch.einsum("bnd,bnmd->bnm", prediction, negative)],
                dim=-1,
            ).float()
            valid = torch.arange(k, N, device=z.device).view(1, -1) < lengths.view(B, 1)  # (B, N - k)
            if not valid.any():
                continue
            nll = F.cross_entropy(scores[valid], scores.new_zeros(int(valid.sum()), dtype=torch.long), reduction="sum")
            total = total + nll
            hits = hits + (scores[valid].argmax(-1) == 0).sum()
            count += int(valid.sum())
        count = max(count, 1)
        return total / count, (hits / count).detach()
