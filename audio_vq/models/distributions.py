"""The decoder's output distributions over the next sample: a 256-way mu-law categorical and
a discretized mixture of logistics (PixelCNN++, as r9y9's wavenet_vocoder uses it).

Each comes as functions (``*_log_prob``, ``*_loss``, ``*_sample``) and as a small class with
one interface (``loss``, ``log_prob``, ``sample``, ``to_class``, ``to_audio``) that the WaveNet
and the incremental generator use. Sampling takes caller-supplied uniforms, so runs are
seedable and testable.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from audio_vq.audio import MU_LAW_CHANNELS, mulaw_decode, mulaw_encode

MIXTURE_BINS = 2**16  # the discretisation of [-1, 1] for the logistic mixture likelihood
LOG_SCALE_MIN = float(np.log(1e-14))  # r9y9 wavenet_vocoder's floor on the logistic log-scales


def _masked_mean(per_sample: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of (B, T) losses, over the samples where ``mask`` (B, T) is True."""
    if mask is None:
        return per_sample.mean()
    if mask.shape != per_sample.shape:
        raise ValueError(f"mask has shape {tuple(mask.shape)}, the loss has {tuple(per_sample.shape)}")
    mask = mask.to(per_sample.dtype)
    return (per_sample * mask).sum() / mask.sum().clamp(min=1.0)


def _check_uniforms(u: torch.Tensor, shape: tuple[int, ...], what: str) -> None:
    if tuple(u.shape) != shape:
        raise ValueError(f"{what} wants uniforms of shape {shape}, got {tuple(u.shape)}")


def _at_least_fp32(t: torch.Tensor) -> torch.Tensor:
    """Losses are computed in float32 (or float64 if given): never in half precision."""
    return t if t.dtype in (torch.float32, torch.float64) else t.float()


def categorical_log_prob(logits: torch.Tensor, target: torch.Tensor, channels: int = MU_LAW_CHANNELS) -> torch.Tensor:
    """Log-probabilities (B, T) of the mu-law classes of ``target`` under ``logits`` (B, channels, T).

    ``target`` (B, T): audio in [-1, 1] (floating dtype, mu-law encoded here) or already mu-law
    classes (integer dtype).
    """
    classes = target if not torch.is_floating_point(target) else mulaw_encode(target, channels)
    return -F.cross_entropy(_at_least_fp32(logits), classes.long(), reduction="none")


def categorical_loss(
    logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None, channels: int = MU_LAW_CHANNELS
) -> torch.Tensor:
    """Cross-entropy (nats per sample) of the mu-law classes of ``target`` (B, T), averaged over
    the samples where ``mask`` (B, T) bool is True (all when None). See :func:`categorical_log_prob`."""
    return _masked_mean(-categorical_log_prob(logits, target, channels), mask)


def categorical_sample(
    logits_t: torch.Tensor, u: torch.Tensor, temperature: float | torch.Tensor = 1.0, argmax: bool = False
) -> torch.Tensor:
    """Classes (B,) int64 from the logits of one time step (B, C), by inverse CDF.

    ``u`` (B,) holds uniforms in [0, 1) supplied by the caller (so sampling is reproducible and
    a generator can draw them in bulk): the class is the first k with ``cdf[k] > u`` where
    ``cdf`` is the cumulative softmax(logits / temperature); ``temperature`` is one number or
    one per row (B,), checked by the caller (a check here would sync a CUDA graph).
    ``argmax=True`` ignores ``u`` and the temperature and returns the most likely class.
    """
    if argmax:
        return logits_t.argmax(dim=-1)
    if not torch.is_tensor(temperature) and temperature <= 0:
        raise ValueError(f"temperature must be > 0 (use argmax=True for greedy decoding), got {temperature}")
    _check_uniforms(u, logits_t.shape[:-1], "categorical_sample")
    scale = temperature.unsqueeze(-1) if torch.is_tensor(temperature) else temperature
    probs = torch.softmax(logits_t.double() / scale, dim=-1)
    cdf = probs.cumsum(dim=-1)
    cdf = cdf / cdf[..., -1:]  # exact 1 at the top: u < 1 always lands in a class
    k = torch.searchsorted(cdf, u.double().unsqueeze(-1), right=True).squeeze(-1)
    return k.clamp(max=logits_t.shape[-1] - 1)


def _split_mixture(logits: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(weights logits, means, log-scales) along ``dim`` of a 3 * mixtures output: the r9y9 /
    PixelCNN++ channel layout [logit_probs | means | log_scales]."""
    n = logits.shape[dim]
    if n % 3:
        raise ValueError(f"a logistic mixture output has 3 * mixtures channels, got {n}")
    return logits.split(n // 3, dim=dim)


def logistic_mixture_log_prob(
    logits: torch.Tensor,
    target: torch.Tensor,
    bins: int = MIXTURE_BINS,
    log_scale_min: float = LOG_SCALE_MIN,
    mu_law_channels: int = MU_LAW_CHANNELS,
) -> torch.Tensor:
    """Log-probabilities (B, T) of ``target``'s bins under a discretized mixture of logistics.

    logits (B, 3 * mixtures, T) in the layout [logit_probs | means | log_scales]; target (B, T)
    audio in [-1, 1] (an integer target is taken as mu-law classes and decoded first). The
    target is snapped to a grid of ``bins`` levels on [-1, 1]; each level owns a bin of width
    2 / (bins - 1), the two edge levels own the tails. PixelCNN++ / r9y9's formula, with
    log_softmax over the weights and softplus for the log-CDFs; where a bin's probability is
    too small for float32 the density at the bin centre times the bin width is used.
    """
    if not torch.is_floating_point(target):
        target = mulaw_decode(target, mu_law_channels)
    logit_probs, means, log_scales = _split_mixture(_at_least_fp32(logits), dim=1)  # (B, M, T) each
    log_scales = log_scales.clamp(min=log_scale_min)
    half = 1.0 / (bins - 1)
    y = target.to(means.dtype).clamp(-1.0, 1.0)
    y = torch.round((y + 1) / (2 * half)) * (2 * half) - 1  # snap to the grid
    y = y.unsqueeze(1)  # (B, 1, T)

    centered = y - means
    inv_s = torch.exp(-log_scales)
    plus_in = inv_s * (centered + half)
    min_in = inv_s * (centered - half)
    log_cdf_plus = plus_in - F.softplus(plus_in)  # log sigmoid(plus_in): lowest bin
    log_one_minus_cdf_min = -F.softplus(min_in)  # log (1 - sigmoid(min_in)): highest bin
    cdf_delta = torch.sigmoid(plus_in) - torch.sigmoid(min_in)
    mid_in = inv_s * centered
    log_pdf_mid = mid_in - log_scales - 2.0 * F.softplus(mid_in)
    log_prob_inner = torch.where(
        cdf_delta > 1e-5, torch.log(cdf_delta.clamp(min=1e-12)), log_pdf_mid + math.log(2 * half)
    )
    log_probs = torch.where(
        y < -1 + half, log_cdf_plus, torch.where(y > 1 - half, log_one_minus_cdf_min, log_prob_inner)
    )
    log_probs = log_probs + F.log_softmax(logit_probs, dim=1)
    return torch.logsumexp(log_probs, dim=1)  # (B, T)


def logistic_mixture_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor | None = None,
    bins: int = MIXTURE_BINS,
    log_scale_min: float = LOG_SCALE_MIN,
    mu_law_channels: int = MU_LAW_CHANNELS,
) -> torch.Tensor:
    """Discretized mixture of logistics NLL (nats per sample) of ``target`` (B, T), averaged over
    the samples where ``mask`` (B, T) bool is True. See :func:`logistic_mixture_log_prob`."""
    return _masked_mean(-logistic_mixture_log_prob(logits, target, bins, log_scale_min, mu_law_channels), mask)


def logistic_mixture_sample(
    logits_t: torch.Tensor,
    u: torch.Tensor,
    temperature: float | torch.Tensor = 1.0,
    argmax: bool = False,
    log_scale_min: float = LOG_SCALE_MIN,
) -> torch.Tensor:
    """Audio samples (B,) in [-1, 1] from the mixture parameters of one time step (B, 3 * mixtures).

    ``u`` (B, 2): ``u[:, 0]`` picks the component by inverse CDF of softmax(weights /
    temperature), ``u[:, 1]`` draws from that logistic by its inverse CDF,
    ``mean + scale * temperature * log(u / (1 - u))`` (``temperature``: one number or one per
    row (B,)). ``argmax=True`` takes the heaviest
    component and returns its mean (ignores ``u``).
    """
    logit_probs, means, log_scales = _split_mixture(logits_t, dim=-1)
    if argmax:
        k = logit_probs.argmax(dim=-1)
        return means.gather(-1, k.unsqueeze(-1)).squeeze(-1).clamp(-1.0, 1.0)
    _check_uniforms(u, (*logits_t.shape[:-1], 2), "logistic_mixture_sample")
    k = categorical_sample(logit_probs, u[..., 0], temperature)
    mean = means.gather(-1, k.unsqueeze(-1)).squeeze(-1)
    log_s = log_scales.gather(-1, k.unsqueeze(-1)).squeeze(-1).clamp(min=log_scale_min)
    v = u[..., 1].to(mean.dtype).clamp(1e-5, 1.0 - 1e-5)
    x = mean + torch.exp(log_s) * temperature * (torch.log(v) - torch.log1p(-v))
    return x.clamp(-1.0, 1.0)


class OutputDistribution:
    """What the decoder's output says about the next sample: its loss, and how a sample is drawn
    (by inverse CDF of ``uniforms_per_sample`` given uniforms, so a row of a batch does not depend
    on the batch). Generation asks it how many uniforms to draw and what a sample is."""

    kind: str
    uniforms_per_sample: int
    samples_are_audio: bool  # sample() gives audio in [-1, 1]; else mu-law classes

    def uniform_shape(self, n: int) -> tuple[int, ...]:
        """The uniforms of n samples: (n,), or (n, uniforms_per_sample) when a sample takes several."""
        return (n,) if self.uniforms_per_sample == 1 else (n, self.uniforms_per_sample)

    def draw_uniforms(self, rng, n: int):
        """n samples' uniforms from a numpy Generator, shaped :meth:`uniform_shape`."""
        return rng.random(self.uniform_shape(n))

    def take_uniforms(self, u):
        """Of uniforms laid out (..., columns >= uniforms_per_sample), what :meth:`sample` takes."""
        return u[..., 0] if self.uniforms_per_sample == 1 else u[..., : self.uniforms_per_sample]


class CategoricalOutput(OutputDistribution):
    """The 256-way (``channels``-way) mu-law categorical over the next sample."""

    kind = "categorical"
    uniforms_per_sample = 1  # the class's inverse-CDF draw
    samples_are_audio = False

    def __init__(self, channels: int = MU_LAW_CHANNELS):
        self.channels = channels
        self.mu_law_channels = channels

    def loss(self, logits, target, mask=None):
        return categorical_loss(logits, target, mask, self.channels)

    def log_prob(self, logits, target):
        return categorical_log_prob(logits, target, self.channels)

    def sample(self, logits_t, u, temperature=1.0, argmax=False):
        """Classes (B,) int64; ``u`` (B,)."""
        return categorical_sample(logits_t, u, temperature, argmax)

    def to_class(self, samples):
        """What the generator feeds back: the sample is already a mu-law class."""
        return samples

    def to_audio(self, samples):
        return mulaw_decode(samples, self.mu_law_channels)


class LogisticMixtureOutput(OutputDistribution):
    """A discretized mixture of ``mixtures`` logistics over [-1, 1] (2^16 bins)."""

    kind = "logistic_mixture"
    uniforms_per_sample = 2  # the component's inverse-CDF draw, then the logistic's
    samples_are_audio = True

    def __init__(
        self,
        mixtures: int = 10,
        mu_law_channels: int = MU_LAW_CHANNELS,
        bins: int = MIXTURE_BINS,
        log_scale_min: float = LOG_SCALE_MIN,
    ):
        self.mixtures = mixtures
        self.channels = 3 * mixtures
        self.mu_law_channels = mu_law_channels
        self.bins = bins
        self.log_scale_min = log_scale_min

    def loss(self, logits, target, mask=None):
        return logistic_mixture_loss(logits, target, mask, self.bins, self.log_scale_min, self.mu_law_channels)

    def log_prob(self, logits, target):
        return logistic_mixture_log_prob(logits, target, self.bins, self.log_scale_min, self.mu_law_channels)

    def sample(self, logits_t, u, temperature=1.0, argmax=False):
        """Audio (B,) in [-1, 1]; ``u`` (B, 2)."""
        return logistic_mixture_sample(logits_t, u, temperature, argmax, self.log_scale_min)

    def to_class(self, samples):
        """What the generator feeds back: the mu-law class of the sampled audio."""
        return mulaw_encode(samples, self.mu_law_channels)

    def to_audio(self, samples):
        return samples
