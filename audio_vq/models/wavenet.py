"""The WaveNet decoder of the VQ-VAE: causal dilated convolutions with gated tanh * sigmoid
units, residual and skip paths, local conditioning on the quantized latents and global
conditioning on a speaker vector (van den Oord et al. 2016, 2017).

Conventions (the fast incremental generator relies on every one of them)
-----------------------------------------------------------------------
Teacher forcing and causality
    ``forward(x, c, g)`` takes the mu-law classes ``x`` (B, T) of the *target* audio and shifts
    them right by one sample inside: the input at step t is ``x[t - 1]``, the input at step 0 is
    :attr:`WaveNet.initial_class` (the mu-law class of 0.0). ``logits[..., t]`` is the
    distribution of sample t and depends on ``x[..., t - receptive_field : t]`` only.

Receptive field
    :attr:`WaveNet.receptive_field` = ``(kernel_size - 1) * sum(dilations) + 1``: the number of
    past samples the prediction at t sees, ``x[t - receptive_field], ..., x[t - 1]`` (the
    one-sample shift is already accounted for: the prediction never sees ``x[t]``).

Local conditioning alignment
    ``c`` (B, cond_channels, frames) must satisfy ``T == frames * hop``. Frame f conditions the
    samples ``[f * hop, (f + 1) * hop)``.

    * ``upsample="repeat"``: exactly. Each layer's projection ``layers[i].cond`` is applied at
      FRAME rate and the result is held for ``hop`` samples, so the generator needs no
      per-sample conditioning tensor: at sample t it adds the column ``t // hop``.
    * ``upsample="transposed"``: learned transposed convolutions (one per stride, product =
      hop) produce sample-rate features before the per-layer projections. Stride s uses
      kernel ``2s + s % 2`` and padding ``(kernel - s) // 2``: the output has exactly
      ``frames * hop`` samples and the influence of frame f is centred on the centre of its
      window, ``f * hop + (hop - 1) / 2``, spreading about half a window either side (so frame f
      also touches a few samples before ``f * hop``: conditioning may look ahead a little, the
      audio path never does). The transposed convs are initialised to nearest-neighbour
      upsampling, i.e. to exactly what "repeat" does.
    * The optional frame-rate stack ``cond_layers`` (non-causal convs over the latents,
      residual: ``c = c + conv(relu(c))``) looks ahead ``cond_layers * (cond_kernel_size // 2)``
      frames; the latents of the whole utterance are known before decoding, so this is allowed.

Pitch (``pitch="frame"`` or ``"excitation"``)
    ``c`` carries PITCH_CHANNELS more channels after the latents: the speaker-normalised log F0
    and the voicing of each frame (:meth:`VQVAE.pitch_features`), conditioning like the latents.
    With ``"excitation"`` the WaveNet also reads a sample-rate source ``e`` (B, 2 * harmonics,
    T) (:func:`audio_vq.pitch.excitation`), projected by a 1x1 conv into every gate: unlike
    the past samples, ``e[t]`` is known at step t (it comes from the contour, not the audio).

Per-layer computation (i = 0 .. stacks * layers_per_stack - 1, dilation 2 ** (i % layers_per_stack))
    ``a = layers[i].dilated(causal_pad(h)) + layers[i].cond(c_feat)[t] + layers[i].speaker(g)
    [+ layers[i].source(e)[t]]``
    ``z = tanh(a[:gate/2]) * sigmoid(a[gate/2:])``
    ``skip_sum += layers[i].skip(z)``
    ``h = (h + layers[i].residual(z)) * RESIDUAL_SCALE``   (the last layer has no residual conv)
    and finally ``logits = head_out(relu(head_hidden(relu(skip_sum * skip_scale))))`` with
    ``skip_scale = sqrt(1 / num_layers)``. The input is ``h = embedding(previous class)``.
    ``layers[i].cond``, ``layers[i].speaker`` and ``layers[i].source`` have no bias
    (``layers[i].dilated`` has one).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..audio import MU_LAW_CHANNELS, mulaw_encode
from .distributions import CategoricalOutput, LogisticMixtureOutput

RESIDUAL_SCALE = math.sqrt(0.5)
PITCH_MODES = ("none", "frame", "excitation")
PITCH_CHANNELS = 2  # the frame-rate pitch features: normalised log F0, voicing


@dataclass(frozen=True)
class StepWeights:
    """The WaveNet's weights laid out for its one-sample-at-a-time recurrence: the one contract
    between :meth:`WaveNet.forward` (the parallel form) and the generator's step paths (torch
    and the numba kernel, which both read these fields by name). Matrices are stored (in, out).

    With L layers, kernel size K, R residual, G gate (H = G / 2), S skip, D conditioning
    channels and C output channels:

    emb     (C_in, R)    the embedding of the previous sample's class
    wd      (L, K*R, G)  the dilated convs; rows [m R, (m + 1) R) are tap m, which multiplies the
                         input at t - (K - 1 - m) * dilation (tap K - 1: the current input)
    dil_b   (L*G,)       the dilated convs' biases, side by side
    wc      (D, L*G)     every layer's local-conditioning projection, side by side
    ws      (E, L*G)     every layer's source projection side by side (E = 0 without an excitation)
    res_w   (L, H, R)    the residual 1x1 convs (the last layer has none: zeros)
    res_b   (L, R)
    skip_w  (L, H, S)    the skip 1x1 convs
    skip_b  (S,)         the skip biases summed over layers
    hid_w   (S, S), hid_b (S,), out_w (S, C), out_b (C,)   the output head
    """

    emb: torch.Tensor
    wd: torch.Tensor
    dil_b: torch.Tensor
    wc: torch.Tensor
    ws: torch.Tensor
    res_w: torch.Tensor
    res_b: torch.Tensor
    skip_w: torch.Tensor
    skip_b: torch.Tensor
    hid_w: torch.Tensor
    hid_b: torch.Tensor
    out_w: torch.Tensor
    out_b: torch.Tensor

    def to(self, dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> "StepWeights":
        """The same weights as contiguous tensors of ``dtype`` on ``device``."""
        return StepWeights(
            **{f.name: getattr(self, f.name).to(device=device, dtype=dtype).contiguous() for f in fields(self)}
        )


def default_upsample_strides(hop: int) -> list[int]:
    """Factor ``hop`` into strides for the transposed-conv upsampler: 4s first, then a 2,
    then the odd prime factors (64 -> [4, 4, 4], 160 -> [4, 4, 2, 5], 1 -> [])."""
    if hop < 1:
        raise ValueError(f"hop must be >= 1, got {hop}")
    strides, rest = [], hop
    while rest % 4 == 0:
        strides.append(4)
        rest //= 4
    if rest % 2 == 0:
        strides.append(2)
        rest //= 2
    p = 3
    while rest > 1:
        while rest % p == 0:
            strides.append(p)
            rest //= p
        p += 2
    return strides


def _autocast_input(t: torch.Tensor) -> torch.Tensor:
    """``t`` in the autocast dtype when autocast is on: one cast that the several products
    reading ``t`` share (autocast casts per product, and the backward pass keeps every copy)."""
    kind = t.device.type
    return t.to(torch.get_autocast_dtype(kind)) if torch.is_autocast_enabled(kind) else t


class ResidualLayer(nn.Module):
    """One gated residual layer. Parameters (named for the incremental generator):
    ``dilated`` Conv1d(residual, gate, kernel_size, dilation) (with bias), ``cond``
    Conv1d(cond_channels, gate, 1) (no bias), ``speaker`` Linear(speaker_dim, gate) (no bias;
    None when speaker_dim == 0), ``source`` Conv1d(source_channels, gate, 1) (no bias; None
    without an excitation), ``residual`` Conv1d(gate/2, residual, 1) (None in the last
    layer, whose residual output nothing reads), ``skip`` Conv1d(gate/2, skip, 1). Gate
    channels [0, gate/2) go through tanh, [gate/2, gate) through sigmoid."""

    def __init__(
        self,
        residual_channels,
        gate_channels,
        skip_channels,
        kernel_size,
        dilation,
        cond_channels,
        speaker_dim,
        source_channels=0,
        last=False,
    ):
        super().__init__()
        self.dilation = dilation
        self.kernel_size = kernel_size
        half = gate_channels // 2
        self.dilated = nn.Conv1d(residual_channels, gate_channels, kernel_size, dilation=dilation)
        self.cond = nn.Conv1d(cond_channels, gate_channels, 1, bias=False)
        self.speaker = nn.Linear(speaker_dim, gate_channels, bias=False) if speaker_dim > 0 else None
        self.source = nn.Conv1d(source_channels, gate_channels, 1, bias=False) if source_channels > 0 else None
        self.residual = None if last else nn.Conv1d(half, residual_channels, 1)
        self.skip = nn.Conv1d(half, skip_channels, 1)

    def bias(self, features: torch.Tensor, g: torch.Tensor | None) -> torch.Tensor:
        """This layer's conditioning term (B, time of ``features``, gate) of time-major
        ``features`` (B, time, cond_channels): the local projection plus the speaker projection
        (broadcast along time)."""
        b = F.linear(features, self.cond.weight[:, :, 0])
        if self.speaker is not None:
            b = b + self.speaker(g).unsqueeze(1)
        return b


class WaveNet(nn.Module):
    """Speaker-conditioned WaveNet over mu-law classes (see the module docstring for the
    alignment and causality conventions).

    Args:
        cond_channels: channels of the latents (the quantizer's output_dim); ``c`` has
            PITCH_CHANNELS more when ``pitch`` is on (:attr:`cond_channels` counts them).
        hop: samples per conditioning frame (the encoder's downsampling factor).
        stacks, layers_per_stack: dilations 1, 2, 4, ... 2**(layers_per_stack-1), ``stacks`` times.
        kernel_size: of the dilated causal convs.
        residual_channels, gate_channels (even: halves for tanh and sigmoid), skip_channels.
        speaker_dim: size of the global conditioning vector ``g``; 0 = no global conditioning.
        upsample: "repeat" (hold each frame for ``hop`` samples) or "transposed" (learned).
        upsample_strides: strides of the transposed convs (product must be ``hop``);
            default :func:`default_upsample_strides`. Only for "transposed".
        cond_layers, cond_kernel_size (odd): an optional non-causal residual conv stack over
            the latents at frame rate, before upsampling. 0 layers = none.
        output: "categorical" (``mu_law_channels``-way) or "logistic_mixture" (3 * mixtures).
        mu_law_channels: classes of the input (both outputs) and of the categorical output.
        mixtures: components of the logistic mixture.
        pitch: "none" (the paper), "frame" (pitch features beside the latents) or "excitation"
            (also the sample-rate source, see the module docstring).
        harmonics: harmonics of the excitation (2 source channels each: cos and sin).
    """

    #: True: :meth:`forward` keeps only each stack's input for the backward pass and recomputes
    #: the stack's activations there (set by train.activation_checkpointing; no effect without grad)
    activation_checkpointing: bool = False

    def __init__(
        self,
        cond_channels: int,
        hop: int,
        stacks: int = 2,
        layers_per_stack: int = 10,
        kernel_size: int = 2,
        residual_channels: int = 64,
        gate_channels: int = 128,
        skip_channels: int = 128,
        speaker_dim: int = 64,
        upsample: str = "repeat",
        upsample_strides: Sequence[int] | None = None,
        cond_layers: int = 0,
        cond_kernel_size: int = 3,
        output: str = "categorical",
        mu_law_channels: int = MU_LAW_CHANNELS,
        mixtures: int = 10,
        pitch: str = "none",
        harmonics: int = 1,
    ):
        super().__init__()
        for name, value, low in [
            ("cond_channels", cond_channels, 1),
            ("hop", hop, 1),
            ("stacks", stacks, 1),
            ("layers_per_stack", layers_per_stack, 1),
            ("kernel_size", kernel_size, 1),
            ("residual_channels", residual_channels, 1),
            ("gate_channels", gate_channels, 2),
            ("skip_channels", skip_channels, 1),
            ("speaker_dim", speaker_dim, 0),
            ("cond_layers", cond_layers, 0),
            ("mu_law_channels", mu_law_channels, 2),
            ("mixtures", mixtures, 1),
            ("harmonics", harmonics, 1),
        ]:
            if int(value) != value or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        if gate_channels % 2:
            raise ValueError(f"gate_channels must be even (tanh and sigmoid halves), got {gate_channels}")
        if upsample not in ("repeat", "transposed"):
            raise ValueError(f"upsample must be 'repeat' or 'transposed', got {upsample!r}")
        if output not in ("categorical", "logistic_mixture"):
            raise ValueError(f"output must be 'categorical' or 'logistic_mixture', got {output!r}")
        if pitch not in PITCH_MODES:
            raise ValueError(f"pitch must be one of {', '.join(PITCH_MODES)}, got {pitch!r}")
        if cond_layers and cond_kernel_size % 2 == 0:
            raise ValueError(f"cond_kernel_size must be odd (centred), got {cond_kernel_size}")

        self.pitch = pitch
        self.harmonics = int(harmonics)
        self.pitch_channels = PITCH_CHANNELS if pitch != "none" else 0
        self.source_channels = 2 * self.harmonics if pitch == "excitation" else 0
        self.latent_channels = cond_channels
        cond_channels = self.cond_channels = cond_channels + self.pitch_channels
        self.hop = hop
        self.stacks = stacks
        self.layers_per_stack = layers_per_stack
        self.kernel_size = kernel_size
        self.residual_channels = residual_channels
        self.gate_channels = gate_channels
        self.skip_channels = skip_channels
        self.speaker_dim = speaker_dim
        self.upsample_mode = upsample
        self.output_kind = output
        self.mu_law_channels = mu_law_channels
        if output == "categorical":
            self.distribution = CategoricalOutput(mu_law_channels)
        else:
            self.distribution = LogisticMixtureOutput(mixtures, mu_law_channels)
        self.out_channels = self.distribution.channels
        #: the input class at step 0 (the mu-law class of 0.0), also the generator's first input
        self.initial_class = int(mulaw_encode(np.zeros(1), mu_law_channels)[0])

        self.embedding = nn.Embedding(mu_law_channels, residual_channels)
        self.cond_convs = nn.ModuleList(
            nn.Conv1d(cond_channels, cond_channels, cond_kernel_size, padding=cond_kernel_size // 2)
            for _ in range(cond_layers)
        )
        if upsample == "transposed":
            strides = default_upsample_strides(hop) if upsample_strides is None else [int(s) for s in upsample_strides]
            if math.prod(strides) != hop or any(s < 1 for s in strides):
                raise ValueError(f"upsample_strides {strides} must be positive with product hop={hop}")
            self.upsample_strides = strides
            self.upsample = nn.ModuleList(
                nn.ConvTranspose1d(cond_channels, cond_channels, 2 * s + s % 2, stride=s, padding=(s + s % 2) // 2)
                for s in strides
            )
        else:
            if upsample_strides is not None:
                raise ValueError("upsample_strides only applies to upsample='transposed'")
            self.upsample_strides = None
            self.upsample = None

        dilations = self.dilations
        self.layers = nn.ModuleList(
            ResidualLayer(
                residual_channels,
                gate_channels,
                skip_channels,
                kernel_size,
                d,
                cond_channels,
                speaker_dim,
                self.source_channels,
                last=(i == len(dilations) - 1),
            )
            for i, d in enumerate(dilations)
        )
        self.skip_scale = math.sqrt(1.0 / len(dilations))
        self.head_hidden = nn.Conv1d(skip_channels, skip_channels, 1)
        self.head_out = nn.Conv1d(skip_channels, self.out_channels, 1)
        self.reset_parameters()

    # -- configuration-derived facts ---------------------------------------------------------

    @property
    def dilations(self) -> list[int]:
        return [2**i for _ in range(self.stacks) for i in range(self.layers_per_stack)]

    @property
    def num_layers(self) -> int:
        return self.stacks * self.layers_per_stack

    @property
    def receptive_field(self) -> int:
        """Samples of past audio the prediction at t sees: ``x[t - receptive_field : t]``."""
        return (self.kernel_size - 1) * sum(self.dilations) + 1

    # -- initialisation ----------------------------------------------------------------------

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Normal(0, 1/fan_in) weights and zero biases throughout (so gate pre-activations start
        at about unit variance for unit-variance inputs); ReLU gain on the head's hidden conv;
        transposed upsamplers start as nearest-neighbour (= "repeat")."""
        nn.init.normal_(self.embedding.weight, 0.0, 1.0)
        for layer in self.layers:
            mods = [layer.dilated, layer.cond, layer.speaker, layer.source, layer.residual, layer.skip]
            for m in mods:
                if m is None:
                    continue
                fan_in = m.weight[0].numel()
                nn.init.normal_(m.weight, 0.0, math.sqrt(1.0 / fan_in))
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        for m in self.cond_convs:
            nn.init.normal_(m.weight, 0.0, math.sqrt(1.0 / m.weight[0].numel()))
            nn.init.zeros_(m.bias)
        if self.upsample is not None:
            for m, s in zip(self.upsample, self.upsample_strides):
                m.weight.zero_()
                p = m.padding[0]
                eye = torch.eye(self.cond_channels, dtype=m.weight.dtype)
                m.weight[:, :, p : p + s] = eye.unsqueeze(-1)
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.head_hidden.weight, 0.0, math.sqrt(2.0 / self.skip_channels))
        nn.init.zeros_(self.head_hidden.bias)
        nn.init.normal_(self.head_out.weight, 0.0, math.sqrt(1.0 / self.skip_channels))
        nn.init.zeros_(self.head_out.bias)

    # -- conditioning ------------------------------------------------------------------------

    @torch.no_grad()
    def step_weights(self) -> StepWeights:
        """This network's :class:`StepWeights` (detached copies: later training does not move them)."""
        R, G, K = self.residual_channels, self.gate_channels, self.kernel_size
        zero_r = self.embedding.weight.new_zeros(G // 2, R)
        layers = self.layers
        return StepWeights(
            emb=self.embedding.weight.clone(),
            # dilated conv weight (G, R, K) -> (K*R, G): tap m is input t - (K - 1 - m) * dilation
            wd=torch.stack([layer.dilated.weight.permute(2, 1, 0).reshape(K * R, G) for layer in layers]),
            dil_b=torch.cat([layer.dilated.bias for layer in layers]),
            wc=torch.cat([layer.cond.weight[:, :, 0].t() for layer in layers], dim=1),
            ws=(
                torch.cat([layer.source.weight[:, :, 0].t() for layer in layers], dim=1)
                if self.source_channels
                else self.embedding.weight.new_zeros(0, len(layers) * G)
            ),
            res_w=torch.stack(
                [layer.residual.weight[:, :, 0].t() if layer.residual is not None else zero_r for layer in layers]
            ),
            res_b=torch.stack([layer.residual.bias if layer.residual is not None else zero_r[0] for layer in layers]),
            skip_w=torch.stack([layer.skip.weight[:, :, 0].t() for layer in layers]),
            skip_b=torch.stack([layer.skip.bias for layer in layers]).sum(0),
            hid_w=self.head_hidden.weight[:, :, 0].t(),
            hid_b=self.head_hidden.bias.clone(),
            out_w=self.head_out.weight[:, :, 0].t(),
            out_b=self.head_out.bias.clone(),
        ).to()

    def local_features(self, c: torch.Tensor) -> torch.Tensor:
        """The features the per-layer ``cond`` projections read: ``c`` through the frame-rate
        conv stack, then (``upsample="transposed"`` only) upsampled to (B, cond_channels,
        frames * hop). For "repeat" they stay at frame rate (B, cond_channels, frames)."""
        for conv in self.cond_convs:
            c = c + conv(F.relu(c))
        if self.upsample is not None:
            for up in self.upsample:
                c = up(c)
        return c

    def check_inputs(
        self, x: torch.Tensor, c: torch.Tensor, g: torch.Tensor | None, e: torch.Tensor | None = None
    ) -> None:
        if x.dim() != 2:
            raise ValueError(f"x must be (B, T) mu-law classes, got shape {tuple(x.shape)}")
        if c.dim() != 3 or c.shape[0] != x.shape[0] or c.shape[1] != self.cond_channels:
            raise ValueError(
                f"c must be (B={x.shape[0]}, cond_channels={self.cond_channels}, frames), got shape {tuple(c.shape)}"
            )
        if x.shape[1] != c.shape[2] * self.hop:
            raise ValueError(
                f"x has T={x.shape[1]} samples but c has {c.shape[2]} frames x hop {self.hop} = "
                f"{c.shape[2] * self.hop} (x {tuple(x.shape)}, c {tuple(c.shape)}); "
                f"pad the audio to a multiple of hop"
            )
        if self.speaker_dim > 0:
            if g is None or tuple(g.shape) != (x.shape[0], self.speaker_dim):
                raise ValueError(
                    f"g must be (B={x.shape[0]}, speaker_dim={self.speaker_dim}), "
                    f"got {None if g is None else tuple(g.shape)}"
                )
        elif g is not None:
            raise ValueError("this WaveNet has speaker_dim=0 (no global conditioning) but g was given")
        if self.source_channels:
            want = (x.shape[0], self.source_channels, x.shape[1])
            if e is None or tuple(e.shape) != want:
                raise ValueError(
                    f"e must be the excitation {want} (pitch='excitation'), got {None if e is None else tuple(e.shape)}"
                )
        elif e is not None:
            raise ValueError(f"this WaveNet has pitch={self.pitch!r} (no excitation) but e was given")

    # -- forward / loss / sample -------------------------------------------------------------

    def forward(
        self, x: torch.Tensor, c: torch.Tensor, g: torch.Tensor | None = None, e: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Teacher-forced logits (B, out_channels, T) for the mu-law classes ``x`` (B, T) int64,
        local conditioning ``c`` (B, cond_channels, frames) with T == frames * hop, speaker
        vectors ``g`` (B, speaker_dim) (None iff speaker_dim == 0) and the excitation ``e``
        (B, source_channels, T) (None iff pitch != "excitation"). ``logits[..., t]`` depends
        on ``x[..., t - receptive_field : t]`` only.

        Computed time-major, (B, T, channels), with every 1x1 conv and every tap of a dilated
        conv as a matrix product over all B * T samples (contiguous, no im2col): a past tap's
        product is taken of the layer's input itself and shifted into place afterwards, so
        the backward pass keeps the input once, not a shifted copy per tap. The returned
        logits are a (B, out_channels, T) view."""
        self.check_inputs(x, c, g, e)
        prev = F.pad(x[:, :-1], (1, 0), value=self.initial_class)  # shift right by one sample
        h = self.embedding(prev)  # (B, T, residual)
        feats = self.local_features(c).transpose(1, 2)  # (B, frames or T, cond_channels)
        source = None if e is None else _autocast_input(e.transpose(1, 2))  # (B, T, source_channels)
        skips = None
        per_stack = self.layers_per_stack
        for first in range(0, self.num_layers, per_stack):
            layers = self.layers[first : first + per_stack]
            if self.activation_checkpointing and torch.is_grad_enabled():
                h, skips = checkpoint(self._layers, layers, h, skips, feats, g, source, use_reentrant=False)
            else:
                h, skips = self._layers(layers, h, skips, feats, g, source)
        out = F.relu(skips * self.skip_scale)
        hidden = F.relu(F.linear(out, self.head_hidden.weight[:, :, 0], self.head_hidden.bias))
        return F.linear(hidden, self.head_out.weight[:, :, 0], self.head_out.bias).transpose(1, 2)

    def _layers(
        self,
        layers: Sequence[ResidualLayer],
        h: torch.Tensor,
        skips: torch.Tensor | None,
        feats: torch.Tensor,
        g: torch.Tensor | None,
        source: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``layers`` applied to the residual stream ``h`` (B, T, residual): the new ``h`` and
        ``skips`` (B, T, skip) plus their skip outputs (``skips`` None: start the sum);
        ``source`` (B, T, source_channels) the excitation (None: none)."""
        B, T, _ = h.shape
        G = self.gate_channels
        for layer in layers:
            K, d, w = layer.kernel_size, layer.dilation, layer.dilated.weight  # w: (G, R, K)
            h_in = _autocast_input(h)
            a = F.linear(h_in, w[:, :, K - 1], layer.dilated.bias)  # tap K - 1: the current input
            bias = layer.bias(feats, g)
            if self.upsample is None:  # frame-rate bias, held for hop samples (no copy)
                a = (a.view(B, T // self.hop, self.hop, G) + bias.unsqueeze(2)).view(B, T, G)
            else:
                a = a + bias
            if source is not None:
                a = a + F.linear(source, layer.source.weight[:, :, 0])
            for m in range(K - 1):  # causal: tap m reads t - (K - 1 - m) * d, so its output lands that much later
                back = (K - 1 - m) * d
                if back < T:
                    a[:, back:] += F.linear(h_in, w[:, :, m])[:, : T - back]
            tanh_in, sig_in = a.chunk(2, dim=-1)
            z = _autocast_input(torch.tanh(tanh_in) * torch.sigmoid(sig_in))
            s = F.linear(z, layer.skip.weight[:, :, 0], layer.skip.bias)
            skips = s if skips is None else skips + s
            if layer.residual is not None:
                h = (h + F.linear(z, layer.residual.weight[:, :, 0], layer.residual.bias)) * RESIDUAL_SCALE
        return h, skips

    def loss(self, logits: torch.Tensor, x_audio: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Reconstruction loss (nats per sample) of ``logits`` (B, out_channels, T) against the
        audio ``x_audio`` (B, T) in [-1, 1] (an integer tensor is taken as mu-law classes),
        averaged over the samples where ``mask`` (B, T) is True (all when None)."""
        return self.distribution.loss(logits, x_audio, mask)

    def sample(
        self, logits_t: torch.Tensor, u: torch.Tensor, temperature: float = 1.0, argmax: bool = False
    ) -> torch.Tensor:
        """Samples from the logits of one step (B, out_channels) with caller-supplied uniforms:
        categorical: u (B,) -> classes (B,) int64; logistic mixture: u (B, 2) -> audio (B,)
        float. ``self.distribution.to_class`` / ``to_audio`` convert either."""
        return self.distribution.sample(logits_t, u, temperature, argmax)
