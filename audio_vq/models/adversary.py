"""A speaker-adversarial classifier on the quantized latents (domain-adversarial training,
Ganin & Lempitsky 2015), to push speaker identity out of the codes and into the decoder's
speaker embedding.

    z_q (B, D, frames) -> gradient reversal (x -weight on the way back) -> 1x1 conv MLP
      -> speaker logits per frame (B, speakers, frames) -> cross-entropy with the speaker

The classifier descends the cross-entropy like any classifier; the reversal hands the encoder
the opposite gradient, scaled by ``weight``, so the encoder learns to make frames the
classifier cannot tell apart by speaker. Frame-level (not pooled) so that each code, which is
what downstream users keep, is the thing made speaker-blind.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class _ReverseGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, scale: float) -> Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor):
        return -ctx.scale * grad, None


def reverse_gradient(x: Tensor, scale: float) -> Tensor:
    """Identity forward; the gradient comes back multiplied by ``-scale``."""
    return _ReverseGradient.apply(x, scale)


class SpeakerAdversary(nn.Module):
    """Frame-wise speaker classifier behind a gradient reversal.

    Args:
        dim: channels of the latents it reads (the quantizer's dim).
        num_speakers: classes (the speaker table's rows).
        weight: scale of the reversed gradient the encoder receives (Ganin's lambda); the
            classifier itself learns from the plain cross-entropy, which joins the total loss
            unscaled. (A model without an adversary does not build this module at all.)
        hidden_channels: width of the classifier's hidden 1x1 conv layer.
    """

    def __init__(self, dim: int, num_speakers: int, weight: float, hidden_channels: int = 64):
        super().__init__()
        if weight <= 0:
            raise ValueError(f"adversary weight must be > 0, got {weight}")
        if num_speakers < 2:
            raise ValueError(f"a speaker adversary needs >= 2 speakers, got {num_speakers}")
        self.weight = float(weight)
        self.classifier = nn.Sequential(
            nn.Conv1d(dim, hidden_channels, 1), nn.ReLU(), nn.Conv1d(hidden_channels, num_speakers, 1)
        )

    def forward(self, z: Tensor, speaker: Tensor, frame_mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Cross-entropy (scalar, mean over real frames) and frame accuracy (detached) of
        classifying each frame of z (B, D, frames) as its row's speaker (B,)."""
        logits = self.classifier(reverse_gradient(z.float(), self.weight))  # (B, S, frames)
        target = speaker[:, None].expand(-1, z.shape[-1])
        ce = F.cross_entropy(logits, target, reduction="none")  # (B, frames)
        correct = (logits.argmax(1) == target).float()
        if frame_mask is None:
            return ce.mean(), correct.mean().detach()
        m = frame_mask.float()
        return (ce * m).sum() / m.sum().clamp_min(1), ((correct * m).sum() / m.sum().clamp_min(1)).detach()
