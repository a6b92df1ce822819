"""The prior over units: a decoder-only Transformer fitted to a trained VQ-VAE's frozen codes
(the paper's learnt prior; downstream, a unit language model).

    tokens (B, T): [start] u1 u2 ... ; start = the speaker's start token, or the plain one
      -> token + position embeddings -> N pre-norm blocks (causal self-attention through
         F.scaled_dot_product_attention, 4x MLP) -> layer norm
      -> unit logits (B, T, K): unit t + 1 given the start and units 1..t
      -> with ``duration_head``: duration logits (B, T, max_duration) of unit t + 1's run
         (deduplicated units, GSLM-style; durations 1..max_duration frames)

Speakers condition through the start token: a sample starts from its speaker's token, so it
keeps one voice and is rendered in it. With ``condition_size`` C > 0 the prior is conditional
(VQ-VAE-2's bottom prior given the top codes): a second sequence of codes in 0..C-1, aligned
with the units (condition[t] belongs to unit t, e.g. the top code held over unit t's frame),
adds its embedding to the input that predicts unit t, so the whole condition is known before
any unit is drawn. Sampling runs one token at a time on a key/value cache
(:class:`KVCache`), which gives the logits recomputing the whole prefix would.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

MLP_RATIO = 4


@dataclass
class PriorOutput:
    """Logits for the next unit (B, T, K) and, with a duration head, its run length (B, T, max_duration)."""

    unit_logits: Tensor
    duration_logits: Tensor | None = None


class KVCache:
    """Keys and values of every layer for the tokens seen so far, (B, heads, T, head_dim) views of
    buffers allocated once for ``capacity`` positions (no copy of the past per new token)."""

    def __init__(self, layers: int, capacity: int | None = None):
        self.capacity = capacity
        self.keys: list[Tensor | None] = [None] * layers
        self.values: list[Tensor | None] = [None] * layers
        self.filled = [0] * layers

    @property
    def length(self) -> int:
        return self.filled[0]

    def extend(self, layer: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        start, t = self.filled[layer], k.shape[2]
        if self.keys[layer] is None:
            shape = (k.shape[0], k.shape[1], max(self.capacity or 0, t), k.shape[3])
            self.keys[layer], self.values[layer] = k.new_empty(shape), v.new_empty(shape)
        elif start + t > self.keys[layer].shape[2]:  # no capacity given: grow by doubling
            grow = max(start + t, 2 * self.keys[layer].shape[2])
            for buffers in (self.keys, self.values):
                old = buffers[layer]
                buffers[layer] = old.new_empty((*old.shape[:2], grow, old.shape[3]))
                buffers[layer][:, :, :start] = old[:, :, :start]
        self.keys[layer][:, :, start : start + t] = k
        self.values[layer][:, :, start : start + t] = v
        self.filled[layer] = start + t
        return self.keys[layer][:, :, : start + t], self.values[layer][:, :, : start + t]


class _Block(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, MLP_RATIO * dim), nn.GELU(), nn.Linear(MLP_RATIO * dim, dim))
        self.dropout = dropout

    def forward(self, x: Tensor, cache: KVCache | None, layer: int, past: int) -> Tensor:
        """x (B, T, dim); with a cache, x holds the new tokens (after ``past`` cached ones) and
        attends to the cached ones too."""
        b, t, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).split(d, dim=2)
        q, k, v = (y.view(b, t, self.heads, d // self.heads).transpose(1, 2) for y in (q, k, v))
        if cache is not None:
            k, v = cache.extend(layer, k, v)
        p = self.dropout if self.training else 0.0
        if past == 0:
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
        elif t == 1:  # one new token sees every position: no mask
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=p)
        else:  # new token i sits at position past + i: it sees every cached one and the new ones up to itself
            mask = torch.ones(t, past + t, dtype=torch.bool, device=x.device).tril(diagonal=past)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        x = x + F.dropout(self.proj(y.transpose(1, 2).reshape(b, t, d)), p, self.training)
        return x + F.dropout(self.mlp(self.norm2(x)), p, self.training)


class UnitPrior(nn.Module):
    """Decoder-only Transformer over unit sequences.

    Args:
        codebook_size: K, the number of units.
        dim, layers, heads: width, depth and attention heads (dim divisible by heads).
        max_len: the longest token sequence (start token included) it has positions for.
        num_speakers: speakers with their own start token (0: unconditional).
        dropout: on attention and residual branches, in training.
        duration_head: also predict each unit's run length (deduplicated units).
        max_duration: longest run the duration head predicts (longer runs are clipped to it).
        condition_size: codes of the conditioning sequence (0: unconditional).
    """

    def __init__(
        self,
        codebook_size: int,
        dim: int = 256,
        layers: int = 4,
        heads: int = 4,
        max_len: int = 1024,
        num_speakers: int = 0,
        dropout: float = 0.1,
        duration_head: bool = False,
        max_duration: int = 32,
        condition_size: int = 0,
    ):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim={dim} must be divisible by heads={heads}")
        for name, v in (
            ("codebook_size", codebook_size),
            ("layers", layers),
            ("max_len", max_len),
            ("max_duration", max_duration),
        ):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name}={v!r}: expected an integer >= 1")
        self.codebook_size, self.max_len, self.num_speakers = codebook_size, max_len, num_speakers
        self.max_duration = max_duration
        self.start = codebook_size  # the plain start token; speaker s starts with codebook_size + 1 + s
        self.tokens = nn.Embedding(codebook_size + 1 + num_speakers, dim)
        self.positions = nn.Embedding(max_len, dim)
        self.blocks = nn.ModuleList(_Block(dim, heads, dropout) for _ in range(layers))
        self.norm = nn.LayerNorm(dim)
        self.unit_head = nn.Linear(dim, codebook_size)
        self.duration_head = nn.Linear(dim, max_duration) if duration_head else None
        if not isinstance(condition_size, int) or condition_size < 0:
            raise ValueError(f"condition_size={condition_size!r}: expected an integer >= 0")
        if condition_size and duration_head:
            raise ValueError("a conditional prior models frame-level units: the condition is aligned with frames")
        self.condition_size = condition_size
        self.conditions = nn.Embedding(condition_size, dim) if condition_size else None
        self.apply(self._init)

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)

    def start_tokens(self, speakers: Tensor | None, batch: int, device) -> Tensor:
        """(B, 1) start tokens: the speakers' (B,) own, or the plain one."""
        if speakers is None:
            return torch.full((batch, 1), self.start, dtype=torch.long, device=device)
        if self.num_speakers == 0:
            raise ValueError("this prior has no speakers: give speakers=None")
        return (self.codebook_size + 1 + speakers.long()).view(-1, 1).to(device)

    def forward(self, tokens: Tensor, cache: KVCache | None = None, condition: Tensor | None = None) -> PriorOutput:
        """tokens (B, T) -> logits for the token after each one; with a cache, ``tokens`` are
        the next ones after those it holds (positions continue from there). A conditional prior
        takes condition (B, T): condition[:, i] belongs to the unit predicted at position i."""
        past = cache.length if cache is not None else 0
        t = tokens.shape[1]
        if past + t > self.max_len:
            raise ValueError(f"{past + t} tokens: this prior has positions for {self.max_len}")
        x = self.tokens(tokens) + self.positions(torch.arange(past, past + t, device=tokens.device))
        if (condition is None) != (self.conditions is None):
            raise ValueError(
                "a conditional prior needs condition (B, T)"
                if condition is None
                else "this prior is not conditional: give condition=None"
            )
        if condition is not None:
            if condition.shape != tokens.shape:
                raise ValueError(f"condition {tuple(condition.shape)} must match tokens {tuple(tokens.shape)}")
            x = x + self.conditions(condition)
        for i, block in enumerate(self.blocks):
            x = block(x, cache, i, past)
        x = self.norm(x)
        return PriorOutput(self.unit_head(x), self.duration_head(x) if self.duration_head is not None else None)

    def loss(
        self,
        units: Tensor,
        lengths: Tensor,
        speakers: Tensor | None = None,
        durations: Tensor | None = None,
        condition: Tensor | None = None,
    ) -> tuple[Tensor, dict]:
        """Mean next-unit cross-entropy (nats) over the real units of a padded batch.

        units (B, T) codes, lengths (B,) real units per row, speakers (B,) or None, durations
        (B, T) run lengths with a duration head, condition (B, T) for a conditional prior (of
        each unit). Returns (loss, metrics)."""
        b, t = units.shape
        inputs = torch.cat([self.start_tokens(speakers, b, units.device), units[:, :-1]], dim=1)
        out = self(inputs, condition=condition)
        mask = torch.arange(t, device=units.device)[None] < lengths[:, None]
        nll = F.cross_entropy(out.unit_logits.transpose(1, 2), units, reduction="none")
        unit_loss = (nll * mask).sum() / mask.sum().clamp(min=1)
        metrics = {"unit_loss": unit_loss.detach(), "bits_per_unit": unit_loss.detach() / math.log(2)}
        loss = unit_loss
        if self.duration_head is not None:
            if durations is None:
                raise ValueError("a prior with a duration head trains on deduplicated units with durations")
            target = durations.clamp(1, self.max_duration) - 1
            dnll = F.cross_entropy(out.duration_logits.transpose(1, 2), target, reduction="none")
            duration_loss = (dnll * mask).sum() / mask.sum().clamp(min=1)
            metrics["duration_loss"] = duration_loss.detach()
            loss = loss + duration_loss
        metrics["loss"] = loss.detach()
        return loss, metrics

    @torch.no_grad()
    def sample(
        self,
        steps: int,
        batch: int = 1,
        speakers: Tensor | None = None,
        prompt: Tensor | None = None,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        uniforms: Tensor | None = None,
        generator: torch.Generator | None = None,
        condition: Tensor | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """``steps`` new units after the start token and an optional ``prompt`` (B, P) of units
        (a conditional prior: given condition (B, P + steps), one code per unit, the prompt's first).

        Returns (units (B, P + steps) with the prompt first, and with a duration head the
        sampled run lengths (B, steps) of the new units, else None). One token per step on a KV
        cache; ``temperature``, ``top_k`` and ``top_p`` (nucleus) shape each draw. Each draw
        inverts the CDF at a uniform: ``uniforms`` (B, steps, 2: unit, duration) give them per
        row, so a row's sample does not depend on the batch it is in; else they come from
        ``generator``."""
        device = next(self.parameters()).device
        batch, uniforms = _rows_and_uniforms(steps, batch, speakers, prompt, uniforms, generator)
        uniforms = uniforms.to(device)
        tokens = self.start_tokens(speakers, batch, device)
        cache = KVCache(len(self.blocks), capacity=1 + (0 if prompt is None else prompt.shape[1]) + steps)
        if prompt is not None and prompt.shape[1]:
            tokens = torch.cat([tokens, prompt.to(device).long()], dim=1)
        given = tokens.shape[1]
        if condition is not None:
            condition = condition.to(device).long()
            if condition.shape != (batch, given - 1 + steps):
                raise ValueError(
                    f"condition {tuple(condition.shape)}: expected (B, prompt + steps) = {(batch, given - 1 + steps)}"
                )

        def at(first: int, stop: int) -> Tensor | None:  # the condition of positions first .. stop - 1
            return None if condition is None else condition[:, first:stop]

        units, durations = [], []
        out = self(tokens, cache, at(0, given))
        for step in range(steps):
            unit = _draw(out.unit_logits[:, -1], temperature, top_k, top_p, uniforms[:, step, 0])
            units.append(unit)
            if out.duration_logits is not None:
                durations.append(_draw(out.duration_logits[:, -1], temperature, top_k, top_p, uniforms[:, step, 1]) + 1)
            if step + 1 < steps:
                out = self(unit[:, None], cache, at(given + step, given + step + 1))
        new = torch.stack(units, dim=1) if units else torch.zeros(batch, 0, dtype=torch.long, device=device)
        full = new if prompt is None else torch.cat([prompt.to(device).long(), new], dim=1)
        if self.duration_head is None:
            return full, None
        return full, torch.stack(durations, dim=1) if durations else torch.zeros_like(new)

    @torch.no_grad()
    def generate(
        self,
        steps: int,
        batch: int = 1,
        speakers: Tensor | None = None,
        prompt: Tensor | None = None,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        uniforms: Tensor | None = None,
        generator: torch.Generator | None = None,
        frames: int | None = None,
        condition: Tensor | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """Up to ``steps`` new units after ``prompt`` (B, P), with no limit from ``max_len``: each
        :meth:`sample` call adds at most half the positions, the rest of the window holding the
        latest units as context. With a duration head it stops early once every row's runs cover
        ``frames``. Returns (the new units (B, n), their run lengths (B, n) or None); the prompt is
        not included. ``uniforms`` (B, steps, 2) as in :meth:`sample`; a conditional prior's
        condition (B, P + steps) as there."""
        batch, uniforms = _rows_and_uniforms(steps, batch, speakers, prompt, uniforms, generator)
        window = self.max_len - 1  # positions after the start token
        chunk = max(1, window // 2)
        units = torch.zeros(batch, 0, dtype=torch.long) if prompt is None else prompt.long().cpu()
        start = units.shape[1]
        durations = torch.zeros(batch, 0, dtype=torch.long) if self.duration_head is not None else None
        done = 0
        while done < steps:
            n = min(chunk, steps - done, window)
            past = units[:, -(window - n) :] if window - n > 0 else units[:, :0]
            first = units.shape[1] - past.shape[1]  # where the window starts in the whole sequence
            window_condition = None if condition is None else condition[:, first : first + past.shape[1] + n]
            new, dur = self.sample(
                n,
                batch=batch,
                speakers=speakers,
                prompt=past,
                temperature=temperature,
                top_k=top_k,
                top_p=top_p,
                uniforms=uniforms[:, done : done + n],
                condition=window_condition,
            )
            units = torch.cat([units, new[:, past.shape[1] :].cpu()], dim=1)
            done += n
            if durations is not None:
                durations = torch.cat([durations, dur.cpu()], dim=1)
                if frames is not None and int(durations.sum(1).min()) >= frames:
                    break
        return units[:, start:], durations


def _rows_and_uniforms(
    steps: int,
    batch: int,
    speakers: Tensor | None,
    prompt: Tensor | None,
    uniforms: Tensor | None,
    generator: torch.Generator | None,
) -> tuple[int, Tensor]:
    """The rows a sampling call draws (the prompt's, else the speakers', else ``batch``) and its
    (rows, steps, 2) uniforms: the given ones, else drawn from ``generator``."""
    if speakers is not None:
        batch = len(speakers)
    if prompt is not None:
        batch = prompt.shape[0]
    if uniforms is None:
        uniforms = torch.rand(batch, steps, 2, generator=generator)
    return batch, uniforms


def _draw(logits: Tensor, temperature: float, top_k: int | None, top_p: float | None, u: Tensor) -> Tensor:
    """One index per row of logits (B, N): the inverse CDF at ``u`` (B,) of the softmax at
    ``temperature`` over the top_k / top_p (nucleus) set."""
    logits = logits.float() / max(temperature, 1e-6)
    if top_k is not None and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        order = logits.sort(dim=-1, descending=True)
        p = order.values.softmax(-1)
        drop = p.cumsum(-1) - p >= top_p  # keep the smallest set reaching top_p
        logits = logits.scatter(-1, order.indices, order.values.masked_fill(drop, float("-inf")))
    cdf = logits.softmax(-1).cumsum(-1)
    return (cdf < u[:, None].to(cdf.dtype) * cdf[:, -1:]).sum(-1).clamp(max=logits.shape[-1] - 1)
