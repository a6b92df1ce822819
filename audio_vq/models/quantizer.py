"""The VQ-VAE bottleneck (van den Oord et al. 2017) and a Gumbel-softmax alternative.

Both quantizers take encoder outputs z (B, D, T), an optional mask (B, T) (True = a real frame,
False = padding), and return a QuantizerOutput: quantized (B, D, T), codes (B, Q, T) with one
codebook, Q = 1 (residual.py stacks them: Q levels), the loss to add to the reconstruction loss,
its parts, and batch metrics. Both run in fp32 even under autocast:
nearest-neighbour search on bf16 distances would pick codes by rounding noise, and EMA
statistics in bf16 would stop moving (0.01 * update is below bf16 resolution of the running sum).

VectorQuantizer options, one flag each: `ema` (codebook by exponential moving averages, appendix
of the paper), `kmeans_init` (codebook from k-means of the first training batch), `restart_after`
(re-seed codes unused for that many steps), `cosine` (unit-norm codes and inputs),
`lookup_dim` (search a low-dimensional projection, as descript-audio-codec's factorised codes).
Under torch.distributed every codebook statistic is summed over ranks and every random choice
is made by rank 0 and broadcast, so all ranks hold the same codebook (see codebook_sync.py).

The bottleneck contract, which every quantizer (and residual.py's and hierarchical.py's
stacks) keeps, so that the VQ-VAE, extraction and the generator need not know which one runs:
``forward(z, mask)`` -> QuantizerOutput; ``lookup(codes)`` (B, n, T) -> z_q (B, output_dim, T);
``levels`` (the VectorQuantizers of a stack, each level's codebook); and attributes
``num_quantizers`` (Q), ``min_levels`` (the fewest first levels that decode), ``level_ratios``
(per level, how many frames one of its codes spans: a coarser level's code is held over them,
so codes stay (B, Q, T) at the finest rate) and ``context_frames`` (frames of context a code
depends on beyond the encoder's own receptive field).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from audio_vq.models.kmeans import cluster_sums, kmeans, nearest

from . import codebook_sync

COMMITMENT_WEIGHT = 0.25  # beta in the paper, which found results unchanged for 0.1 to 2.0
EMA_DECAY = 0.99  # gamma in the paper's appendix
EMA_EPSILON = 1e-5  # Laplace smoothing of the EMA cluster sizes (Sonnet's VectorQuantizerEMA)
KMEANS_ITERS = 10
# A fresh (or restarted) code counts as one vector's worth of evidence in the EMA statistics,
# so embedding = ema_embed_sum / ema_cluster_size holds from the start and a new code adapts fast.
FRESH_CLUSTER_SIZE = 1.0

# Gumbel quantizer defaults: wav2vec 2.0 (Baevski et al. 2020), temperature 2 -> 0.5 decayed by
# 0.999995 per update, diversity loss weight 0.1.
GUMBEL_TEMPERATURE = 2.0
GUMBEL_MIN_TEMPERATURE = 0.5
GUMBEL_TEMPERATURE_DECAY = 0.999995
DIVERSITY_WEIGHT = 0.1


@dataclass
class QuantizerOutput:
    """What a quantizer's forward returns. Losses and metrics are 0-d tensors (fp32; counts int64)."""

    quantized: Tensor  # (B, D, T) in z's dtype; value = the codes' vectors, gradient -> z (straight-through)
    codes: Tensor  # (B, Q, T) int64: one row of codes per codebook (Q = num_quantizers)
    loss: Tensor  # the total quantizer loss: add it to the reconstruction loss
    codebook_loss: Tensor  # ||sg[z_e] - e||^2 (0 with EMA updates and for the Gumbel quantizer)
    commitment_loss: Tensor  # ||z_e - sg[e]||^2, unweighted (loss holds beta * this)
    diversity_loss: Tensor  # Gumbel: (K - perplexity of the mean softmax) / K, unweighted; else 0
    perplexity: Tensor  # exp(entropy of the batch's code histogram): K_used when uniform over K_used
    usage: Tensor  # fraction of the K codes used at least once in the batch
    dead_codes: Tensor  # codes unused for `restart_after` training steps, else unused in this batch
    restarted: Tensor  # codes re-seeded from encoder outputs in this step

    def metrics(self) -> dict[str, Tensor]:
        """The scalar fields, detached, for logging (no .item(): no device sync here)."""
        return {f.name: getattr(self, f.name).detach() for f in fields(self) if f.name not in ("quantized", "codes")}

    @classmethod
    def of_levels(cls, outs: list["QuantizerOutput"], quantized: Tensor, codes: Tensor) -> "QuantizerOutput":
        """One output for a stack of levels' outputs: losses and code counts summed, perplexity
        and usage averaged over levels."""
        return cls(
            quantized=quantized,
            codes=codes,
            loss=sum(o.loss for o in outs),
            codebook_loss=sum(o.codebook_loss for o in outs),
            commitment_loss=sum(o.commitment_loss for o in outs),
            diversity_loss=sum(o.diversity_loss for o in outs),
            perplexity=torch.stack([o.perplexity for o in outs]).mean(),
            usage=torch.stack([o.usage for o in outs]).mean(),
            dead_codes=sum(o.dead_codes for o in outs),
            restarted=sum(o.restarted for o in outs),
        )


def check_codes(codes: Tensor, num_quantizers: int) -> None:
    """ValueError unless codes is (B, n, T) with 1 <= n <= num_quantizers."""
    if codes.dim() != 3 or not 1 <= codes.shape[1] <= num_quantizers:
        raise ValueError(
            f"codes must be (B, levels, T) with 1 <= levels <= {num_quantizers}, got shape {tuple(codes.shape)}"
        )


def check_input(z: Tensor, dim: int, mask: Tensor | None) -> tuple[int, int, Tensor | None]:
    """(B, T, flat mask (B*T,) or None) of z (B, D, T); ValueError if D is not ``dim``."""
    if z.dim() != 3 or z.shape[1] != dim:
        raise ValueError(f"expected z of shape (B, {dim}, T), got {tuple(z.shape)}")
    batch, _, frames = z.shape
    return batch, frames, _flat_mask(mask, batch, frames)


def _flat_mask(mask: Tensor | None, batch: int, frames: int) -> Tensor | None:
    """(B*T,) bool, or None when every frame is real."""
    if mask is None:
        return None
    if mask.shape != (batch, frames):
        raise ValueError(f"mask must be (B, T) = {(batch, frames)}, got {tuple(mask.shape)}")
    return mask.reshape(-1).to(torch.bool)


def _mse(a: Tensor, b: Tensor, valid: Tensor | None) -> Tensor:
    """Mean squared error of rows a, b (N, d) over the valid rows (all when valid is None)."""
    if valid is None:
        return F.mse_loss(a, b)
    # where(), not multiplication by the mask: padded frames may hold inf/nan (0 * inf = nan)
    per_row = torch.where(valid, (a - b).pow(2).sum(1), 0.0)
    return per_row.sum() / (valid.sum().clamp(min=1) * a.shape[1])


def _code_metrics(codes: Tensor, valid: Tensor | None, k: int) -> tuple[Tensor, Tensor, Tensor]:
    """(counts (K,), perplexity, usage) of this batch's codes (N,), padding excluded."""
    counts = torch.bincount(codes if valid is None else codes[valid], minlength=k).float()
    probs = counts / counts.sum().clamp(min=1)
    perplexity = torch.special.entr(probs).sum().exp()  # entr(p) = -p log p, with entr(0) = 0
    return counts, perplexity, (counts > 0).float().mean()


class OneCodebook:
    """The bottleneck contract (module docstring) of a quantizer with one codebook at the
    encoder's frame rate."""

    num_quantizers, min_levels, level_ratios, context_frames = 1, 1, (1,), 0
    dim: int

    @property
    def levels(self) -> tuple:
        """The codebooks: this quantizer's own."""
        return (self,)

    @property
    def output_dim(self) -> int:
        """Channels of z_q: D."""
        return self.dim


class VectorQuantizer(OneCodebook, nn.Module):
    """Nearest-neighbour vector quantizer with a straight-through gradient: one codebook (Q = 1).

    z_q = z_e + (e_k - z_e).detach(), k = argmin_k ||z_e - e_k||^2 (computed as e_k.detach() +
    (z_e - z_e.detach()): the same gradients, and the value is e_k bit for bit, so `lookup(codes)`
    reproduces `quantized` exactly). loss = codebook_loss + commitment_weight * commitment_loss.

    Args:
        dim: D, channels of the encoder output z (B, D, T).
        codebook_size: K, number of codes.
        commitment_weight: beta.
        ema: update the codebook by exponential moving averages of the assigned encoder outputs
            (training mode only) instead of by the codebook loss, which is then 0.
        ema_decay, ema_epsilon: the EMA decay gamma and the Laplace smoothing of cluster sizes.
        kmeans_init: on the first training forward, set the codebook to the k-means centroids
            of that batch's encoder outputs (`kmeans_iters` Lloyd iterations). The `initialized`
            buffer records it, so a loaded checkpoint is not re-initialised.
        restart_after: re-seed a code that no (real) frame used for this many consecutive training
            steps with a random encoder output of the current batch; None = never.
        cosine: L2-normalise inputs and codes: nearest by cosine similarity; `quantized` and
            the losses use the unit vectors.
        lookup_dim: project D -> lookup_dim (linear) before the search and back after it;
            losses and the codebook live in the small space. None = search in D.
    """

    def __init__(
        self,
        dim: int,
        codebook_size: int,
        *,
        commitment_weight: float = COMMITMENT_WEIGHT,
        ema: bool = False,
        ema_decay: float = EMA_DECAY,
        ema_epsilon: float = EMA_EPSILON,
        kmeans_init: bool = False,
        kmeans_iters: int = KMEANS_ITERS,
        restart_after: int | None = None,
        cosine: bool = False,
        lookup_dim: int | None = None,
    ):
        super().__init__()
        if dim < 1 or codebook_size < 1:
            raise ValueError(f"dim and codebook_size must be positive, got {dim}, {codebook_size}")
        if not 0.0 < ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in (0, 1), got {ema_decay}")
        if kmeans_iters < 1:
            raise ValueError(f"kmeans_iters must be >= 1, got {kmeans_iters}")
        if restart_after is not None and restart_after < 1:
            raise ValueError(f"restart_after must be >= 1 or None, got {restart_after}")
        if lookup_dim is not None and lookup_dim < 1:
            raise ValueError(f"lookup_dim must be >= 1 or None, got {lookup_dim}")
        self.dim, self.codebook_size, self.lookup_dim = dim, codebook_size, lookup_dim
        self.codebook_dim = lookup_dim or dim
        self.commitment_weight = commitment_weight
        self.ema, self.ema_decay, self.ema_epsilon = ema, ema_decay, ema_epsilon
        self.kmeans_init, self.kmeans_iters = kmeans_init, kmeans_iters
        self.restart_after, self.cosine = restart_after, cosine

        self.in_proj = nn.Linear(dim, lookup_dim) if lookup_dim else None
        self.out_proj = nn.Linear(lookup_dim, dim) if lookup_dim else None
        # Sonnet's initialiser: uniform with variance 1/d, i.e. codes of about unit norm
        bound = math.sqrt(3.0 / self.codebook_dim)
        init = torch.empty(codebook_size, self.codebook_dim).uniform_(-bound, bound)
        if ema:  # a buffer: the optimiser must not touch it
            self.register_buffer("embedding", init)
            self.register_buffer("ema_cluster_size", torch.full((codebook_size,), FRESH_CLUSTER_SIZE))
            self.register_buffer("ema_embed_sum", init * FRESH_CLUSTER_SIZE)
        else:
            self.embedding = nn.Parameter(init)
        self.register_buffer("initialized", torch.tensor(not kmeans_init))
        if restart_after is not None:  # consecutive training steps each code went unused
            self.register_buffer("unused_steps", torch.zeros(codebook_size, dtype=torch.long))
        self.register_buffer("restarts", torch.zeros((), dtype=torch.long))  # total, over training

    @property
    def codebook(self) -> Tensor:
        """(K, codebook_dim): the vectors the search compares with (unit-norm when cosine)."""
        return F.normalize(self.embedding, dim=1) if self.cosine else self.embedding

    def extra_repr(self) -> str:
        options = [
            f"dim={self.dim}",
            f"codebook_size={self.codebook_size}",
            f"commitment_weight={self.commitment_weight}",
        ]
        for name in ("ema", "kmeans_init", "cosine"):
            if getattr(self, name):
                options.append(f"{name}=True")
        for name in ("restart_after", "lookup_dim"):
            if getattr(self, name) is not None:
                options.append(f"{name}={getattr(self, name)}")
        return ", ".join(options)

    def forward(self, z: Tensor, mask: Tensor | None = None) -> QuantizerOutput:
        """z (B, D, T), mask (B, T) bool (True = real frame) -> QuantizerOutput."""
        batch, frames, valid = check_input(z, self.dim, mask)
        with torch.autocast(z.device.type, enabled=False):
            x = self._project_in(z.float())  # (B*T, d)
            if self.kmeans_init and self.training and not self.initialized:
                self._initialize(self._candidates(x.detach(), valid))
            with torch.no_grad():
                codes = nearest(x, self.codebook)
            e = self._gather(codes)
            codebook_loss, commitment_loss = self._losses(x, e, valid)
            # straight-through: value e exactly (x - x.detach() is 0), gradient to x the identity;
            # the codebook gets no gradient from the reconstruction, only from codebook_loss
            through = torch.is_grad_enabled() and x.requires_grad
            straight = e.detach() + (x - x.detach()) if through else e.detach()
            quantized = self._project_out(straight, batch, frames)
            counts, perplexity, usage = _code_metrics(codes, valid, self.codebook_size)
            dead_codes = (counts == 0).sum()
            restarted = torch.zeros_like(dead_codes)
            if self.training and (self.ema or self.restart_after is not None):
                dead_codes, restarted = self._update(x.detach(), codes, valid, dead_codes)
        return QuantizerOutput(
            quantized=quantized.to(z.dtype),
            codes=codes.view(batch, 1, frames),
            loss=codebook_loss + self.commitment_weight * commitment_loss,
            codebook_loss=codebook_loss,
            commitment_loss=commitment_loss,
            diversity_loss=torch.zeros_like(commitment_loss),
            perplexity=perplexity,
            usage=usage,
            dead_codes=dead_codes,
            restarted=restarted,
        )

    def lookup(self, codes: Tensor) -> Tensor:
        """codes (B, 1, T) -> (B, D, T) fp32: the vectors forward returned as `quantized` for
        them, bit for bit (but a training forward with ema=True updates the codebook after
        picking its vectors, so lookup then returns the updated ones)."""
        check_codes(codes, 1)
        batch, _, frames = codes.shape
        with torch.autocast(codes.device.type, enabled=False):
            return self._project_out(self._gather(codes.reshape(-1)), batch, frames)

    # -- pieces of forward ----------------------------------------------------------------------

    def _project_in(self, z: Tensor) -> Tensor:
        """z (B, D, T) -> x (B*T, d), the vectors searched (unit-norm when cosine)."""
        x = z.transpose(1, 2)  # (B, T, D): one vector per frame
        if self.in_proj is not None:
            x = self.in_proj(x)
        x = x.reshape(-1, self.codebook_dim)
        return F.normalize(x, dim=1) if self.cosine else x

    def _project_out(self, e: Tensor, batch: int, frames: int) -> Tensor:
        """e (B*T, d) -> (B, D, T), a transposed view of (B, T, D) memory: consumers that need
        another layout copy once themselves (conv1d does), so no copy is made here."""
        e = e.view(batch, frames, self.codebook_dim)
        if self.out_proj is not None:
            e = self.out_proj(e)
        return e.transpose(1, 2)

    def _gather(self, codes: Tensor) -> Tensor:
        """codes (N,) -> e (N, d). Gather first, normalise after: the graph then holds only the
        gathered rows, so a restart may rewrite the embedding in place before backward."""
        e = F.embedding(codes, self.embedding)
        return F.normalize(e, dim=1) if self.cosine else e

    def _losses(self, x: Tensor, e: Tensor, valid: Tensor | None) -> tuple[Tensor, Tensor]:
        """(codebook_loss, commitment_loss) for x, e (N, d)."""
        if self.ema:
            return x.new_zeros(()), _mse(x, e.detach(), valid)
        if not (torch.is_grad_enabled() and (x.requires_grad or e.requires_grad)):
            same = _mse(x, e, valid)  # without gradients the two terms have one value: one pass
            return same, same
        return _mse(x.detach(), e, valid), _mse(x, e.detach(), valid)

    @staticmethod
    def _candidates(x: Tensor, valid: Tensor | None) -> Tensor:
        """The real frames' vectors; all of them if the mask leaves none (seeds need some)."""
        if valid is None:
            return x
        real = x[valid]
        return real if real.shape[0] > 0 else x

    # -- training-time codebook updates (identical on every rank) -------------------------------

    @torch.no_grad()
    def _initialize(self, x: Tensor) -> None:
        centroids, _ = kmeans(x, self.codebook_size, self.kmeans_iters, cosine=self.cosine)
        self.embedding.copy_(centroids)
        if self.ema:
            self.ema_cluster_size.fill_(FRESH_CLUSTER_SIZE)
            self.ema_embed_sum.copy_(centroids * FRESH_CLUSTER_SIZE)
        self.initialized.fill_(True)

    @torch.no_grad()
    def _update(self, x: Tensor, codes: Tensor, valid: Tensor | None, dead_codes: Tensor) -> tuple[Tensor, Tensor]:
        """EMA step and dead-code restarts for x (N, d) and its codes (N,); returns
        (dead_codes, restarted). Counts and sums are all-reduced, so every rank agrees."""
        real_x, real_codes = (x, codes) if valid is None else (x[valid], codes[valid])
        if self.ema:
            counts, sums = cluster_sums(real_x, real_codes, self.codebook_size)
            self.ema_cluster_size.lerp_(counts, 1.0 - self.ema_decay)  # N = gamma N + (1 - gamma) n
            self.ema_embed_sum.lerp_(sums, 1.0 - self.ema_decay)  # m = gamma m + (1 - gamma) sum z
            total = self.ema_cluster_size.sum()
            # Laplace smoothing: an empty cluster keeps a tiny positive size instead of dividing by 0
            eps, k = self.ema_epsilon, self.codebook_size
            smoothed = (self.ema_cluster_size + eps) / (total + k * eps) * total
            self.embedding.copy_(self.ema_embed_sum / smoothed.unsqueeze(1))
        else:
            counts = torch.bincount(real_codes, minlength=self.codebook_size).float()
            codebook_sync.all_reduce_sum_(counts)
        if self.restart_after is None:
            return dead_codes, torch.zeros_like(dead_codes)
        self.unused_steps.add_(1).masked_fill_(counts > 0, 0)
        dead = self.unused_steps >= self.restart_after
        count = dead.sum()
        if count > 0:  # same on every rank: unused_steps follows the all-reduced counts
            index = dead.nonzero().squeeze(1)
            vectors = codebook_sync.sample_rows(self._candidates(x, valid), index.numel())
            self.embedding.index_copy_(0, index, vectors)
            if self.ema:
                self.ema_cluster_size.index_fill_(0, index, FRESH_CLUSTER_SIZE)
                self.ema_embed_sum.index_copy_(0, index, vectors * FRESH_CLUSTER_SIZE)
            self.unused_steps.index_fill_(0, index, 0)
            self.restarts.add_(count)
        return count, count.clone()


class GumbelQuantizer(OneCodebook, nn.Module):
    """Gumbel-softmax quantizer (Jang et al. 2017; wav2vec 2.0's, with one group).

    logits = W z per frame; training: a hard one-hot sample of gumbel_softmax(logits / tau) whose
    gradient is the soft sample's (straight-through), quantized = one_hot @ codebook; eval:
    the argmax code. loss = diversity_weight * (K - exp(H(mean softmax over real frames))) / K,
    which is 0 when the batch spreads its probability over all codes.

    The temperature is a buffer (saved in checkpoints): each training forward multiplies it by
    `temperature_decay`, down to `min_temperature`; `set_temperature` overrides it (schedules).
    """

    def __init__(
        self,
        dim: int,
        codebook_size: int,
        *,
        temperature: float = GUMBEL_TEMPERATURE,
        min_temperature: float = GUMBEL_MIN_TEMPERATURE,
        temperature_decay: float = GUMBEL_TEMPERATURE_DECAY,
        diversity_weight: float = DIVERSITY_WEIGHT,
    ):
        super().__init__()
        if dim < 1 or codebook_size < 1:
            raise ValueError(f"dim and codebook_size must be positive, got {dim}, {codebook_size}")
        if temperature <= 0 or min_temperature <= 0 or not 0 < temperature_decay <= 1:
            raise ValueError("temperatures must be > 0 and temperature_decay in (0, 1]")
        self.dim, self.codebook_size = dim, codebook_size
        self.min_temperature, self.temperature_decay = min_temperature, temperature_decay
        self.diversity_weight = diversity_weight
        self.logits = nn.Linear(dim, codebook_size)
        self.embedding = nn.Parameter(torch.randn(codebook_size, dim))
        self.register_buffer("temperature", torch.tensor(float(temperature)))

    @property
    def codebook(self) -> Tensor:
        """(K, D)."""
        return self.embedding

    def set_temperature(self, value: float) -> None:
        self.temperature.fill_(value)

    def forward(self, z: Tensor, mask: Tensor | None = None) -> QuantizerOutput:
        """z (B, D, T), mask (B, T) bool (True = real frame) -> QuantizerOutput."""
        batch, frames, valid = check_input(z, self.dim, mask)
        with torch.autocast(z.device.type, enabled=False):
            logits = self.logits(z.float().transpose(1, 2)).reshape(-1, self.codebook_size)  # (B*T, K)
            if self.training:
                one_hot = F.gumbel_softmax(logits, tau=self.temperature.clone(), hard=True, dim=1)
                codes = one_hot.argmax(1)
                e = one_hot @ self.embedding
                with torch.no_grad():  # in place after use: hence the clone above
                    self.temperature.mul_(self.temperature_decay).clamp_(min=self.min_temperature)
            else:
                codes = logits.argmax(1)
                e = F.embedding(codes, self.embedding)
            probs = logits.softmax(1) if valid is None else logits[valid].softmax(1)
            mean_probs = probs.sum(0) / max(probs.shape[0], 1)
            soft_perplexity = torch.special.entr(mean_probs).sum().exp()
            diversity_loss = (self.codebook_size - soft_perplexity) / self.codebook_size
            counts, perplexity, usage = _code_metrics(codes, valid, self.codebook_size)
            zero = torch.zeros_like(diversity_loss)
        dead_codes = (counts == 0).sum()
        quantized = e.view(batch, frames, self.dim).transpose(1, 2)
        return QuantizerOutput(
            quantized=quantized.to(z.dtype),
            codes=codes.view(batch, 1, frames),
            loss=self.diversity_weight * diversity_loss,
            codebook_loss=zero,
            commitment_loss=zero,
            diversity_loss=diversity_loss,
            perplexity=perplexity,
            usage=usage,
            dead_codes=dead_codes,
            restarted=torch.zeros_like(dead_codes),
        )

    def lookup(self, codes: Tensor) -> Tensor:
        """codes (B, 1, T) -> (B, D, T) fp32: the vectors eval-mode forward returns for them."""
        check_codes(codes, 1)
        return F.embedding(codes[:, 0], self.embedding).transpose(1, 2)
