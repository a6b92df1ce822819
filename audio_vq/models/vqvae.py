"""The VQ-VAE: encoder -> quantizer -> speaker-conditioned WaveNet decoder.

    audio (B, T) -> Encoder -> z_e (B, D, frames) -> quantizer -> codes (B, Q, frames), z_q (B, D, frames)
    z_q [time jitter in training] + speaker embedding g (B, speaker_dim) -> WaveNet -> logits (B, C, T)
    [pitch on: + the speaker-normalised F0 contour (B, 2, frames) beside z_q, and for
     pitch="excitation" the sample-rate source e (B, 2 * harmonics, T) into every gate]
    (in training the WaveNet's teacher-forced past may be corrupted: input_noise, input_dropout)

    loss = reconstruction (cross-entropy of the true mu-law sample, or the mixture NLL)
         + codebook loss + beta * commitment loss         (the KL term, log K, is dropped)
         [+ speaker-adversary cross-entropy on z_q, its gradient reversed into the encoder]
         [+ aux_mel_weight * L1 of an auxiliary frame-rate decoder's log-mel (aux_mel.py)]
         [+ cpc_weight * InfoNCE of predicting z_q's future frames from its past (cpc.py)]

Inputs of any length work: the audio is right-padded to a multiple of the hop (frames =
ceil(T / hop)) and the padding is masked out of every loss and codebook statistic. The
speaker table lives here, not in the decoder, so one decoder can be conditioned on any row;
so does the table of the speakers' log-F0 statistics (``pitch_stats``, set from the training
split before training), which puts a contour in a speaker's register.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..audio import SAMPLE_RATE, mulaw_encode
from ..pitch import PitchStats
from .adversary import SpeakerAdversary
from .aux_mel import LogMel, MelDecoder, masked_l1
from .cpc import CPCLoss
from .encoder import Encoder
from .hierarchical import HierarchicalQuantizer
from .quantizer import GumbelQuantizer, QuantizerOutput, VectorQuantizer
from .residual import ResidualVectorQuantizer
from .wavenet import WaveNet

QUANTIZERS = {
    "vector": VectorQuantizer,
    "gumbel": GumbelQuantizer,
    "residual": ResidualVectorQuantizer,
    "hierarchical": HierarchicalQuantizer,
}


@dataclass
class VQVAEOutput:
    """What a training forward returns: the total loss, its terms, the codes (B, Q, frames) and
    the quantizer's output."""

    loss: Tensor
    reconstruction_loss: Tensor
    codebook_loss: Tensor
    commitment_loss: Tensor
    codes: Tensor
    quantizer: QuantizerOutput
    adversary_loss: Tensor | None = None  # the speaker adversary's cross-entropy (None: no adversary)
    adversary_accuracy: Tensor | None = None  # its frame accuracy (chance: 1 / speakers)
    aux_mel_loss: Tensor | None = None  # the auxiliary decoder's log-mel L1 (None: none), unweighted
    cpc_loss: Tensor | None = None  # the contrastive loss on z_q (None: none), unweighted
    cpc_accuracy: Tensor | None = None  # the share of its futures picked out (chance: 1 / (negatives + 1))

    def metrics(self) -> dict[str, Tensor]:
        """Scalars for logging, detached: the total and reconstruction losses, the quantizer's
        (its total as ``quantizer_loss``) and the adversary's when there is one."""
        q = self.quantizer.metrics()
        q["quantizer_loss"] = q.pop("loss")
        out = {"loss": self.loss.detach(), "reconstruction_loss": self.reconstruction_loss.detach(), **q}
        if self.adversary_loss is not None:
            out.update(adversary_loss=self.adversary_loss.detach(), adversary_accuracy=self.adversary_accuracy)
        if self.aux_mel_loss is not None:
            out["aux_mel_loss"] = self.aux_mel_loss.detach()
        if self.cpc_loss is not None:
            out.update(cpc_loss=self.cpc_loss.detach(), cpc_accuracy=self.cpc_accuracy)
        return out


def metric_names() -> tuple[str, ...]:
    """The names VQVAEOutput.metrics() can hold, in log order (the adversary's only when on)."""
    quantizer = [f.name for f in fields(QuantizerOutput) if f.name not in ("quantized", "codes", "loss")]
    return (
        "loss",
        "reconstruction_loss",
        "quantizer_loss",
        *quantizer,
        "adversary_loss",
        "adversary_accuracy",
        "aux_mel_loss",
        "cpc_loss",
        "cpc_accuracy",
    )


def corrupt_past(audio: Tensor, noise: float, dropout: float, generator: torch.Generator | None = None) -> Tensor:
    """The audio the decoder reads as its teacher-forced past (B, T): ``audio`` plus Gaussian
    noise of std ``noise`` (clipped to [-1, 1]), then each sample set to silence with
    probability ``dropout``. The targets stay clean, so a decoder that cannot trust its past
    must lean on the codes and the speaker."""
    if noise <= 0.0 and dropout <= 0.0:
        return audio
    out = audio
    if noise > 0.0:
        out = (out + noise * torch.randn(out.shape, generator=generator, device=out.device, dtype=out.dtype)).clamp(
            -1, 1
        )
    if dropout > 0.0:
        keep = torch.rand(out.shape, generator=generator, device=out.device) >= dropout
        out = out * keep
    return out


def time_jitter(z: Tensor, probability: float, generator: torch.Generator | None = None) -> Tensor:
    """Chorowski et al. 2019's regulariser: each frame of z (B, D, T) is replaced by its left
    or its right neighbour, each with probability p / 2 (edges clamp to themselves)."""
    if probability <= 0.0:
        return z
    batch, dim, frames = z.shape
    r = torch.rand(batch, frames, generator=generator, device=z.device)
    shift = (r < probability / 2).long() * -1 + ((r >= probability / 2) & (r < probability)).long()
    index = (torch.arange(frames, device=z.device) + shift).clamp(0, frames - 1)
    return z.gather(2, index.unsqueeze(1).expand(batch, dim, frames))


class VQVAE(nn.Module):
    """Encoder, quantizer, speaker table and decoder.

    Args:
        encoder: maps audio to z_e (B, D, frames); its ``hop`` is the decoder's.
        quantizer: a bottleneck of quantizer.py's contract over D channels (a VectorQuantizer,
            GumbelQuantizer, ResidualVectorQuantizer or HierarchicalQuantizer).
        decoder: a WaveNet conditioned on the quantizer's output_dim channels at hop samples per frame.
        num_speakers: rows of the speaker table (``speakers.json``); 0 with speaker_dim 0.
        jitter: time-jitter probability of the latents in training (0 = off; Chorowski: 0.12).
        input_noise: std of Gaussian noise on the decoder's teacher-forced past in training.
        input_dropout: probability that a past sample the decoder reads in training is silenced.
        adversary: a SpeakerAdversary on z_q (None = none).
        aux_mel: a MelDecoder from the decoder's conditioning to log-mel (None = none), its loss
            weighted by ``aux_mel_weight``; ``sample_rate`` sets its analysis.
        cpc: a CPCLoss on z_q (None = none), weighted by ``cpc_weight``.
    """

    def __init__(
        self,
        encoder: Encoder,
        quantizer: nn.Module,
        decoder: WaveNet,
        num_speakers: int,
        jitter: float = 0.0,
        input_noise: float = 0.0,
        input_dropout: float = 0.0,
        adversary: SpeakerAdversary | None = None,
        aux_mel: MelDecoder | None = None,
        aux_mel_weight: float = 0.0,
        cpc: CPCLoss | None = None,
        cpc_weight: float = 0.0,
        sample_rate: int = SAMPLE_RATE,
    ):
        super().__init__()
        if decoder.hop != encoder.hop:
            raise ValueError(f"decoder hop {decoder.hop} != encoder hop {encoder.hop}")
        if not 0.0 <= jitter < 1.0:
            raise ValueError(f"jitter must be in [0, 1), got {jitter}")
        if not input_noise >= 0.0:
            raise ValueError(f"input_noise must be >= 0, got {input_noise}")
        if not 0.0 <= input_dropout < 1.0:
            raise ValueError(f"input_dropout must be in [0, 1), got {input_dropout}")
        if decoder.speaker_dim > 0 and num_speakers < 1:
            raise ValueError("a speaker-conditioned decoder needs num_speakers >= 1")
        self.encoder, self.quantizer, self.decoder = encoder, quantizer, decoder
        self.speakers = nn.Embedding(num_speakers, decoder.speaker_dim) if decoder.speaker_dim > 0 else None
        self.num_speakers = num_speakers
        self.jitter = jitter
        self.input_noise, self.input_dropout = float(input_noise), float(input_dropout)
        self.adversary = adversary
        if (aux_mel is None) != (aux_mel_weight <= 0):
            raise ValueError(
                f"aux_mel_weight must be > 0 exactly when there is an auxiliary decoder, got {aux_mel_weight}"
            )
        self.aux_mel, self.aux_mel_weight = aux_mel, float(aux_mel_weight)
        if aux_mel is not None:
            self.log_mel = LogMel(encoder.hop, sample_rate, aux_mel.output.out_channels)
        if (cpc is None) != (cpc_weight <= 0):
            raise ValueError(f"cpc_weight must be > 0 exactly when there is a CPC loss, got {cpc_weight}")
        self.cpc, self.cpc_weight = cpc, float(cpc_weight)
        if decoder.pitch != "none":
            # (num_speakers, 2): mean and std of each speaker's ln F0 (pitch.PitchStats), saved with
            # the weights; training sets it from the training split (set_pitch_stats)
            self.register_buffer("pitch_stats", torch.tensor([[0.0, 1.0]]).repeat(max(num_speakers, 1), 1))
        else:
            self.pitch_stats = None
        # set by checkpoint.load_model: the speaker names of the table and the run's config
        self.speaker_index: dict[str, int] = {}
        self.config: dict | None = None
        self.directory = None  # the model directory it was loaded from (audio_vq.save_pretrained reads it)

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], num_speakers: int, sample_rate: int = SAMPLE_RATE) -> "VQVAE":
        """Build from ``model`` config: ``encoder``, ``quantizer`` (with ``kind``), ``decoder``
        ``jitter``, ``input_noise``, ``input_dropout``, ``adversary`` (``weight``, 0 = none,
        and ``hidden_channels``), ``aux_mel`` (``weight``, 0 = none, and MelDecoder's
        arguments) and ``cpc`` (``weight``, 0 = none, and CPCLoss's arguments); the keys of each
        group are the constructor's arguments. The encoder's output takes the quantizer's ``dim``;
        the decoder's conditioning and the adversary's input its output_dim (2 x dim for the
        hierarchy's two levels)."""
        q = dict(cfg["quantizer"])
        kind = q.pop("kind", "vector")
        if kind not in QUANTIZERS:
            raise ValueError(f"model.quantizer.kind={kind!r}: expected one of {', '.join(QUANTIZERS)}")
        encoder = Encoder(dim=q["dim"], **dict(cfg["encoder"]))
        quantizer = QUANTIZERS[kind](**q)
        decoder = WaveNet(cond_channels=quantizer.output_dim, hop=encoder.hop, **dict(cfg["decoder"]))
        adv = dict(cfg.get("adversary") or {})
        adversary = (
            SpeakerAdversary(quantizer.output_dim, num_speakers, **adv)
            if float(adv.get("weight", 0.0)) > 0 and num_speakers > 1
            else None
        )
        mel = dict(cfg.get("aux_mel") or {})
        mel_weight = float(mel.pop("weight", 0.0))
        aux_mel = MelDecoder(decoder.cond_channels, decoder.speaker_dim, **mel) if mel_weight > 0 else None
        contrastive = dict(cfg.get("cpc") or {})
        cpc_weight = float(contrastive.pop("weight", 0.0))
        cpc = CPCLoss(quantizer.output_dim, **contrastive) if cpc_weight > 0 else None
        return cls(
            encoder,
            quantizer,
            decoder,
            num_speakers,
            jitter=float(cfg.get("jitter", 0.0)),
            input_noise=float(cfg.get("input_noise", 0.0)),
            input_dropout=float(cfg.get("input_dropout", 0.0)),
            adversary=adversary,
            aux_mel=aux_mel,
            aux_mel_weight=mel_weight,
            cpc=cpc,
            cpc_weight=cpc_weight,
            sample_rate=sample_rate,
        )

    @property
    def hop(self) -> int:
        """Samples per latent frame."""
        return self.encoder.hop

    @property
    def sample_rate(self) -> int:
        """The rate the model works at: its run's ``data.sample_rate`` (16 kHz without a config)."""
        return int(self.config["data"]["sample_rate"]) if self.config else SAMPLE_RATE

    @property
    def num_quantizers(self) -> int:
        """Q: codebooks (levels) per frame."""
        return self.quantizer.num_quantizers

    @property
    def min_levels(self) -> int:
        """The fewest first levels that decode (1; 2 for the hierarchy, whose bottom needs its top)."""
        return self.quantizer.min_levels

    @property
    def level_hops(self) -> tuple[int, ...]:
        """Samples per frame of each level's own rate (the hop, or r x hop for a top level
        held over r frames)."""
        return tuple(self.hop * r for r in self.quantizer.level_ratios)

    @property
    def uses_pitch(self) -> bool:
        """Whether the decoder needs an F0 contour (model.decoder.pitch != none)."""
        return self.decoder.pitch != "none"

    @property
    def uses_excitation(self) -> bool:
        """Whether the decoder also reads the sample-rate excitation (pitch="excitation")."""
        return self.decoder.source_channels > 0

    @torch.no_grad()
    def set_pitch_stats(self, stats: Mapping[int, PitchStats]) -> None:
        """Rows of the log-F0 statistics table: speaker index -> its :class:`PitchStats`."""
        for index, st in stats.items():
            self.pitch_stats[int(index)] = torch.tensor([st.mean, st.std], dtype=self.pitch_stats.dtype)

    def speaker_pitch_stats(self, speaker: int) -> PitchStats:
        """A trained speaker's register, from the table."""
        self.speaker_vector(torch.tensor([speaker]))  # the table's range check
        mean, std = (float(v) for v in self.pitch_stats[speaker])
        return PitchStats(mean=mean, std=std, voiced_frames=0)

    def pitch_features(self, f0: Tensor, stats: Tensor) -> Tensor:
        """The decoder's frame-rate pitch input (B, 2, frames) of contours ``f0`` (B, frames) Hz
        (0 = unvoiced): the log F0 normalised by ``stats`` (B, 2) (mean, std of ln F0; 0 on
        unvoiced frames), and the voicing (1 / 0)."""
        voiced = f0 > 0
        z = (torch.log(torch.where(voiced, f0, torch.ones_like(f0))) - stats[:, :1]) / stats[:, 1:]
        return torch.stack([torch.where(voiced, z, torch.zeros_like(z)), voiced.to(z.dtype)], dim=1)

    def decoder_conditioning(self, latents: Tensor, f0: Tensor | None, speaker: Tensor | None) -> Tensor:
        """The decoder's local conditioning (B, cond_channels, frames): ``latents`` (B, D,
        frames), and for a pitch model its pitch features of ``f0`` (B, frames) Hz in the
        registers of ``speaker`` (B,)."""
        if not self.uses_pitch:
            if f0 is not None:
                raise ValueError("this model has no pitch input (model.decoder.pitch=none) but f0 was given")
            return latents
        if f0 is None or tuple(f0.shape) != (latents.shape[0], latents.shape[2]):
            raise ValueError(
                f"this model is pitch-conditioned: f0 must be (B={latents.shape[0]}, "
                f"frames={latents.shape[2]}) Hz, got {None if f0 is None else tuple(f0.shape)}"
            )
        if speaker is None:  # no speaker table: one row of statistics
            self.speaker_vector(speaker)  # (raises for a speaker-conditioned model)
            speaker = torch.zeros(f0.shape[0], dtype=torch.long, device=f0.device)
        else:
            self.speaker_vector(speaker)  # the table's range check
        feats = self.pitch_features(f0.to(latents.dtype), self.pitch_stats[speaker].to(latents.dtype))
        return torch.cat([latents, feats], dim=1)

    @torch.no_grad()
    def codebook_vectors(self) -> Tensor:
        """(Q, K, D) float32: [l, k] is level l's vector for code k (Q = 1: row k is the latent of
        code k; residual levels' vectors sum to the latent, the hierarchy's stand side by side)."""
        codes = torch.arange(self.quantizer.codebook_size, device=next(self.parameters()).device)
        return torch.stack([level.lookup(codes[None, None])[0].T.float() for level in self.quantizer.levels])

    def forward(
        self,
        audio: Tensor,
        speaker: Tensor | None = None,
        mask: Tensor | None = None,
        f0: Tensor | None = None,
        excitation: Tensor | None = None,
    ) -> VQVAEOutput:
        """Teacher-forced training pass. audio (B, T) in [-1, 1]; speaker (B,) int64 indices;
        mask (B, T) bool, True on the real samples, a prefix of each row (None = all real);
        for a pitch model f0 (B, ceil(T / hop)) Hz and with pitch="excitation" the excitation
        (B, 2 * harmonics, T) (pitch.excitation, phase-locked to the audio)."""
        if excitation is not None:
            excitation = F.pad(excitation, (0, self.encoder.num_frames(audio.shape[1]) * self.hop - audio.shape[1]))
        audio, mask, frame_mask = self._pad(audio, mask)
        q = self.quantizer(self.encoder(audio, _lengths(mask)), mask=frame_mask)
        z = time_jitter(q.quantized, self.jitter) if self.training else q.quantized
        past = corrupt_past(audio, self.input_noise, self.input_dropout) if self.training else audio
        # the WaveNet reads these classes only as its (shifted) past; the loss is on clean audio
        g = self.speaker_vector(speaker)
        cond = self.decoder_conditioning(z, f0, speaker)
        logits = self.decoder(mulaw_encode(past, self.decoder.mu_law_channels), cond, g, excitation)
        reconstruction = self.decoder.loss(logits, audio, mask)
        loss = reconstruction + q.loss
        mel_loss = None
        if self.aux_mel is not None:
            with torch.autocast(audio.device.type, enabled=False):  # the log of small energies wants fp32
                target = self.log_mel(audio if mask is None else audio * mask)  # windows reach past the end
            mel_loss = masked_l1(self.aux_mel(cond, g), target, frame_mask)
            loss = loss + self.aux_mel_weight * mel_loss
        cpc_loss = cpc_acc = None
        if self.cpc is not None:
            cpc_loss, cpc_acc = self.cpc(q.quantized, frame_mask)
            loss = loss + self.cpc_weight * cpc_loss
        adv_loss = adv_acc = None
        if self.adversary is not None and speaker is not None:
            adv_loss, adv_acc = self.adversary(q.quantized, speaker, frame_mask)
            loss = loss + adv_loss
        return VQVAEOutput(
            loss,
            reconstruction,
            q.codebook_loss,
            q.commitment_loss,
            q.codes,
            q,
            adv_loss,
            adv_acc,
            mel_loss,
            cpc_loss,
            cpc_acc,
        )

    @torch.no_grad()
    def encode(self, audio: Tensor, mask: Tensor | None = None) -> Tensor:
        """Codes (B, Q, ceil(T / hop)) of audio (B, T); evaluates the quantizer without updating
        it. The first n levels of a residual quantizer's codes decode on their own."""
        was_training = self.training
        self.eval()
        try:
            audio, mask, frame_mask = self._pad(audio, mask)
            return self.quantizer(self.encoder(audio, _lengths(mask)), mask=frame_mask).codes
        finally:
            self.train(was_training)

    def latents(self, codes: Tensor) -> Tensor:
        """z_q (B, output_dim, frames) of codes (B, n, frames), min_levels <= n <= Q (the first n
        levels): what the decoder is conditioned on."""
        return self.quantizer.lookup(codes)

    def speaker_vector(self, speaker: Tensor | None) -> Tensor | None:
        """Rows of the speaker table, (B, speaker_dim); None for an unconditioned decoder."""
        if self.speakers is None:
            return None
        if speaker is None:
            raise ValueError("this model is speaker-conditioned: pass speaker indices (B,)")
        bad = (speaker < 0) | (speaker >= self.num_speakers)
        if bad.any():
            raise ValueError(
                f"speaker index {int(speaker[bad][0])} is not in the table of {self.num_speakers} "
                "speakers (a held-out speaker has no embedding)"
            )
        return self.speakers(speaker)

    def decoder_logits(
        self,
        audio: Tensor,
        latents: Tensor,
        speaker: Tensor | None,
        f0: Tensor | None = None,
        excitation: Tensor | None = None,
    ) -> Tensor:
        """Teacher-forced logits (B, C, T) for audio (B, T = frames * hop) given latents
        (B, D, frames) and speakers (B,) (and a pitch model's f0 (B, frames) Hz and excitation
        (B, 2 * harmonics, T)): decode one speaker's codes with another's identity."""
        target = mulaw_encode(audio, self.decoder.mu_law_channels)
        return self.decoder(
            target, self.decoder_conditioning(latents, f0, speaker), self.speaker_vector(speaker), excitation
        )

    def _pad(self, audio: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """Right-pad audio (and mask) to a multiple of the hop; the frame mask marks frames
        holding any real sample."""
        if audio.dim() != 2:
            raise ValueError(f"audio must be (B, T), got {tuple(audio.shape)}")
        if mask is not None and mask.shape != audio.shape:
            raise ValueError(f"mask {tuple(mask.shape)} does not match audio {tuple(audio.shape)}")
        batch, samples = audio.shape
        pad = self.encoder.num_frames(samples) * self.hop - samples
        if pad == 0 and mask is None:
            return audio, None, None
        if mask is None:
            mask = torch.ones_like(audio, dtype=torch.bool)
        audio = F.pad(audio, (0, pad))
        mask = F.pad(mask, (0, pad), value=False)
        return audio, mask, mask.view(batch, -1, self.hop).any(dim=-1)


def _lengths(mask: Tensor | None) -> Tensor | None:
    """Real samples per row, (B,): the mask marks a prefix of each row (right padding)."""
    return None if mask is None else mask.sum(dim=-1)
