"""Fast incremental WaveNet generation (the "Fast WaveNet" queue algorithm, Paine et al. 2016).

Autoregressive decoding of the VQ-VAE's WaveNet one sample at a time, with per-layer cached
state instead of recomputing the receptive field:

* each layer keeps a ring buffer of its past residual inputs (slot ``t % len``); the dilated
  conv at step t reads the taps ``t - m * dilation``;
* the conditioning (latent and speaker projections, plus the dilated convs' biases) is
  computed once per utterance at frame rate, a ``(layers * gate)`` column per latent frame
  that sample t adds as column ``t // hop`` (see the alignment conventions in DESIGN.md and
  :mod:`audio_vq.models.wavenet`), never as an upsampled per-sample tensor. With
  ``upsample="transposed"`` the conditioning is genuinely per sample: it is computed piece by
  piece (the whole utterance's frame-rate ``cond_convs`` stack first, then the transposed
  convs over the piece plus a margin of frames) and projected per sample;
* sampling happens inside the loop from caller-supplied uniforms (inverse CDF: the first k
  with cdf[k] > u; for a logistic mixture u[:, 0] picks the component and u[:, 1] the
  logistic, as :meth:`WaveNet.sample <audio_vq.models.wavenet.WaveNet.sample>`), so runs are
  seedable and testable; temperature and argmax modes;
* utterances of different lengths decode together; state carries across chunks, so
  :meth:`Generator.stream` yields audio as it goes and equals :meth:`Generator.generate`.

Two backends compute the same thing:

``"numba"`` (the default on CPU): the compiled kernel of :mod:`audio_vq._generate_kernel`,
    float32, register-blocked AVX-512 matrix products, a rational tanh; it releases the GIL,
    so groups of streams run in parallel threads (``threads``). On a 2-vCPU Xeon: one stream
    ~1.4x real time on one thread, 16 streams ~7x on two (``benchmarks/generate.py``).
``"torch"`` (the default when the model is on a GPU, and the second reference): the same
    recurrence with batched torch ops over all utterances, in the model's dtype and device,
    every index in a device tensor so that on CUDA one step is captured as a CUDA graph and
    replayed (one launch per sample). On a CPU it is some 20x slower than the kernel (per-op
    overhead at every step).

Randomness: utterance ``i`` of a call draws its uniforms from
``np.random.default_rng([seed, first_index + i])``: ``(samples,)`` for a categorical output,
``(samples, 2)`` for a logistic mixture. So utterance ``i`` of a batch equals the same
utterance generated alone with ``first_index=i`` (the default 0 makes a lone utterance's draws
``default_rng([seed, 0])``), and a caller that splits a long list into batches passes each
batch's offset to keep every output independent of the batching. With the same uniforms the
two backends give the same samples, except where float rounding moves a CDF boundary across u
(float32 logits agree to ~1e-6; it is rare, and the trajectories then part).
"""

from __future__ import annotations

import concurrent.futures
import importlib.util
import math
import warnings
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from . import pitch
from .models.vqvae import VQVAE
from .models.wavenet import RESIDUAL_SCALE, StepWeights

BACKENDS = ("auto", "numba", "torch")
#: samples per kernel call in generate() (a multiple of hop is taken): bounds the memory for
#: uniforms and features and sets the granularity of progress reports
CHUNK_SAMPLES = 8192
#: latent frames around a chunk that the transposed upsampler sees (its reach is under two
#: frames either side, see WaveNet's docstring), so chunked features equal the full ones
TRANSPOSED_MARGIN_FRAMES = 4
#: uniforms per sample in the sessions' layout (the kernel's (nb, n, 2)): the most any output
#: distribution draws (OutputDistribution.uniforms_per_sample), unused columns zero
UNIFORM_COLUMNS = 2


def _numba_available() -> bool:
    return importlib.util.find_spec("numba") is not None  # numba comes with librosa


def _kernel_weights(w: StepWeights):
    """The numba kernel's float32 arrays (:class:`._generate_kernel.KernelWeights`) from the
    decoder's :class:`StepWeights`."""
    from ._generate_kernel import KernelWeights

    def f32(t: Tensor) -> np.ndarray:
        return np.ascontiguousarray(t.detach().to("cpu", torch.float32).numpy())

    return KernelWeights(
        emb=f32(w.emb),
        wd=f32(w.wd),
        wc=f32(w.wc),
        ws=f32(w.ws),
        sr_w=f32(torch.cat([w.skip_w, w.res_w], dim=2)),  # (L, H, S + R): skip | residual
        res_b=f32(w.res_b),
        skip_last=f32(w.skip_w[-1]),
        skip_b=f32(w.skip_b),
        hid_w=f32(w.hid_w),
        hid_b=f32(w.hid_b),
        out_w=f32(w.out_w),
        out_b=f32(w.out_b),
    )


@dataclass
class _Utterance:
    """One utterance to decode: its codes, speaker and the frame-rate conditioning."""

    codes: np.ndarray  # (levels, frames) int64
    speaker: int | None
    frames: int
    length: int  # samples = frames * hop
    feats: Tensor  # (frames, D) after the frame-rate cond stack, model dtype / device
    const: Tensor  # (layers * gate,) speaker projection + dilated biases, model dtype / device
    f0: np.ndarray | None = None  # (frames,) Hz: a pitch model's contour, in the voice's register
    source: np.ndarray | None = None  # (length, 2 * harmonics) float32: the excitation (pitch="excitation")
    temperature: np.ndarray | None = None  # (length,) float64: the sampling temperature of each sample
    uniforms: np.ndarray | None = None  # given by the caller: (length,) or (length, 2)
    rng: np.random.Generator | None = None  # else drawn from this, chunk by chunk
    drawn: int = 0  # samples of uniforms taken so far
    out: np.ndarray | None = field(default=None, repr=False)


class Generator:
    """Incremental sampler of a :class:`~audio_vq.models.vqvae.VQVAE`'s WaveNet decoder.

    Args:
        model: the VQ-VAE (put in eval mode; its weights are read once here, so build a new
            Generator after changing them).
        backend: "auto" (the numba kernel on CPU, torch on CUDA), "numba" or "torch".
        threads: how many threads the numba backend spreads the streams over (groups of
            utterances, balanced by length); None = ``torch.get_num_threads()``. The torch
            backend decodes all utterances as one batch and ignores it.
    """

    def __init__(self, model: VQVAE, backend: str = "auto", threads: int | None = None):
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        if threads is not None and (int(threads) != threads or threads < 1):
            raise ValueError(f"threads must be a positive integer or None, got {threads!r}")
        model.eval()
        self.model = model
        dec = model.decoder
        self.decoder = dec
        self.device = next(model.parameters()).device
        if backend == "auto":
            backend = "torch" if self.device.type != "cpu" or not _numba_available() else "numba"
        if backend == "numba" and not _numba_available():
            raise ValueError("backend='numba' needs numba (pip install numba), or use backend='torch'")
        self.backend = backend
        self.threads = int(threads) if threads is not None else max(1, torch.get_num_threads())
        self.hop = dec.hop
        self.transposed = dec.upsample is not None
        self.feat_hop = 1 if self.transposed else self.hop
        self.distribution = dec.distribution
        self.out_channels = dec.out_channels
        self.num_layers = dec.num_layers
        self.kernel_size = dec.kernel_size
        self.residual_channels = dec.residual_channels
        self.gate_channels = dec.gate_channels
        self.dilations = dec.dilations
        self.ring_len = [(self.kernel_size - 1) * d + 1 for d in self.dilations]  # the torch path's rings
        self.codebook_size = int(model.quantizer.codebook_size)
        self.chunk_samples = max(self.hop, CHUNK_SAMPLES // self.hop * self.hop)
        self._torch_weights = dec.step_weights()
        if backend == "numba":
            from . import _generate_kernel

            self._kernel = _generate_kernel
            self._np_weights = _kernel_weights(self._torch_weights)
            past = self.kernel_size - 1
            self._geometry = _generate_kernel.Geometry(
                dil=np.asarray(self.dilations, np.int64),
                ring_off=np.concatenate([[0], np.cumsum([past * d for d in self.dilations])[:-1]]).astype(np.int64),
                past_off=np.concatenate([[0], np.cumsum(self.dilations)[:-1]]).astype(np.int64),
                past_taps=past,
                residual_scale=float(RESIDUAL_SCALE),
                skip_scale=float(dec.skip_scale),
                log_scale_min=float(getattr(dec.distribution, "log_scale_min", 0.0)),
                mu_law_channels=int(dec.mu_law_channels),
            )
            self._ring_slots = past * sum(self.dilations)

    # -- inputs -------------------------------------------------------------------------------

    def _utterances(self, codes: Sequence, speakers: Sequence | None, f0: Sequence | None = None) -> list[_Utterance]:
        """Check the inputs and compute each utterance's frame-rate conditioning."""
        if isinstance(codes, (Tensor, np.ndarray)) and getattr(codes, "ndim", 2) == 2:
            raise ValueError(
                "codes must be a sequence of per-utterance (levels, frames) arrays, e.g. [codes], not one array"
            )
        codes = list(codes)
        n = len(codes)
        spk_cond = self.model.speakers is not None
        if speakers is None:
            if spk_cond:
                raise ValueError(f"this model is speaker-conditioned: pass {n} speaker indices")
            speakers = [None] * n
        speakers = list(speakers)
        if len(speakers) != n:
            raise ValueError(f"got {n} code sequences but {len(speakers)} speakers")
        if self.model.uses_pitch:
            if f0 is None or len(f0) != n:
                raise ValueError(
                    f"this model is pitch-conditioned (model.decoder.pitch={self.decoder.pitch}): pass "
                    f"{n} F0 contours, got {'none' if f0 is None else len(f0)}"
                )
        elif f0 is not None:
            raise ValueError("this model has no pitch input (model.decoder.pitch=none) but F0 contours were given")
        utts = []
        for i, (c, s) in enumerate(zip(codes, speakers)):
            c = c.detach().cpu().numpy() if isinstance(c, Tensor) else np.asarray(c)
            if c.ndim != 2 or not self.model.min_levels <= c.shape[0] <= self.model.num_quantizers:
                raise ValueError(
                    f"codes[{i}] must be (levels, frames) with {self.model.min_levels} <= levels <= "
                    f"{self.model.num_quantizers} (the model's codebooks), got shape {c.shape}"
                )
            if c.size and not np.issubdtype(c.dtype, np.integer):
                if not np.all(np.equal(np.mod(c, 1), 0)):
                    raise ValueError(f"codes[{i}] must hold integer units, got dtype {c.dtype}")
            c = c.astype(np.int64)
            if c.size and (c.min() < 0 or c.max() >= self.codebook_size):
                bad = int(c[(c < 0) | (c >= self.codebook_size)][0])
                raise ValueError(f"codes[{i}] holds unit {bad}, outside the codebook [0, {self.codebook_size})")
            if spk_cond:
                if s is None or int(s) != s:
                    raise ValueError(f"speakers[{i}] must be an integer speaker index, got {s!r}")
                s = int(s)
                if not 0 <= s < self.model.num_speakers:
                    raise ValueError(
                        f"speakers[{i}]: speaker index {s} is not in the table of "
                        f"{self.model.num_speakers} speakers (a held-out speaker has no embedding)"
                    )
            else:
                s = None
            contour = None
            if f0 is not None:
                contour = np.asarray(f0[i].detach().cpu() if isinstance(f0[i], Tensor) else f0[i], dtype=np.float64)
                if contour.shape != (c.shape[1],) or not np.isfinite(contour).all() or (contour < 0).any():
                    raise ValueError(
                        f"f0[{i}] must be a finite contour (frames={c.shape[1]},) in Hz, 0 = unvoiced, "
                        f"got shape {contour.shape}"
                    )
            utts.append(self._conditioning(c, s, contour))
        return utts

    @torch.no_grad()
    def _conditioning(self, codes: np.ndarray, speaker: int | None, f0: np.ndarray | None) -> _Utterance:
        dec, w = self.decoder, self._torch_weights
        frames = codes.shape[1]
        if frames:
            lat = self.model.latents(torch.from_numpy(codes).to(self.device).unsqueeze(0))  # (1, D, F): first levels
            if f0 is not None:
                spk = None if speaker is None else torch.tensor([speaker], device=self.device)
                lat = self.model.decoder_conditioning(lat, torch.from_numpy(f0).to(self.device, lat.dtype)[None], spk)
            lat = lat.to(w.wc.dtype)
            for conv in dec.cond_convs:  # the frame-rate stack of WaveNet.local_features
                lat = lat + conv(F.relu(lat))
            feats = lat[0].t().contiguous()  # (F, D)
        else:
            feats = w.wc.new_zeros(0, w.wc.shape[0])
        const = w.dil_b.clone()
        if speaker is not None:
            g = self.model.speaker_vector(torch.tensor([speaker], device=self.device))
            const += torch.cat([layer.speaker(g)[0] for layer in dec.layers])
        return _Utterance(codes, speaker, frames, frames * self.hop, feats, const, f0)

    @torch.no_grad()
    def _features(self, utt: _Utterance, t0: int, t1: int) -> Tensor:
        """The feature rows conditioning samples [t0, t1): frames [t0 // hop, ceil(t1 / hop))
        for "repeat"; for "transposed" the upsampled per-sample rows, computed over the piece
        plus a margin of frames (so they equal the whole utterance's)."""
        f0, f1 = t0 // self.hop, min(utt.frames, -(-t1 // self.hop))
        if f0 >= f1:
            return utt.feats[:0]
        if not self.transposed:
            return utt.feats[f0:f1]
        a = max(0, f0 - TRANSPOSED_MARGIN_FRAMES)
        b = min(utt.frames, f1 + TRANSPOSED_MARGIN_FRAMES)
        c = utt.feats[a:b].t().unsqueeze(0)
        for up in self.decoder.upsample:
            c = up(c)
        return c[0, :, t0 - a * self.hop : min(t1, utt.length) - a * self.hop].t()

    def _setup_randomness(
        self, utts: list[_Utterance], seed: int, first_index: int, uniforms: Sequence[np.ndarray] | None, argmax: bool
    ) -> None:
        if uniforms is not None:
            uniforms = list(uniforms)
            if len(uniforms) != len(utts):
                raise ValueError(f"got {len(uniforms)} uniform arrays for {len(utts)} utterances")
            for i, (u, utt) in enumerate(zip(uniforms, utts)):
                u = np.asarray(u, dtype=np.float64)
                want = self.distribution.uniform_shape(utt.length)
                if u.shape != want:
                    kind = self.distribution.kind.replace("_", " ")
                    raise ValueError(
                        f"uniforms[{i}] must have shape {want} (frames * hop samples, {kind} output), got {u.shape}"
                    )
                if u.size and (u.min() < 0.0 or u.max() > 1.0):
                    raise ValueError(f"uniforms[{i}] must lie in [0, 1]")
                utt.uniforms = u
        elif not argmax:
            for i, utt in enumerate(utts):
                utt.rng = np.random.default_rng([int(seed), int(first_index) + i])

    def _setup_excitation(
        self, utts: list[_Utterance], seed: int, first_index: int, excitation: Sequence[np.ndarray] | None
    ) -> None:
        """Each utterance's excitation (pitch="excitation"): given, or built from its contour
        with noise from its own stream, so the uniforms stay as they were."""
        if not self.model.uses_excitation:
            if excitation is not None:
                raise ValueError(f"this model has no excitation input (model.decoder.pitch={self.decoder.pitch})")
            return
        if excitation is not None and len(excitation) != len(utts):
            raise ValueError(f"got {len(excitation)} excitations for {len(utts)} utterances")
        for i, utt in enumerate(utts):
            if excitation is None:
                e = self.excitation(
                    utt.f0, np.random.default_rng([int(seed), int(first_index) + i, pitch.EXCITATION_STREAM])
                )
            else:
                e = np.asarray(excitation[i], dtype=np.float32)
                want = (self.decoder.source_channels, utt.length)
                if e.shape != want:
                    raise ValueError(f"excitation[{i}] must have shape {want}, got {e.shape}")
            utt.source = np.ascontiguousarray(e.T)

    def excitation(self, f0: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The excitation (2 * harmonics, frames * hop) of a contour (frames,) Hz, built from
        the contour alone (no audio to lock its phase to), its noise from ``rng``."""
        return pitch.excitation(f0, self.hop, self.model.sample_rate, self.decoder.harmonics, rng)

    def _take_uniforms(self, utt: _Utterance, n: int) -> np.ndarray:
        """The next n uniforms of an utterance as (n, UNIFORM_COLUMNS) float64 (the columns past
        the distribution's uniforms_per_sample unused)."""
        start = utt.drawn
        m = min(n, max(0, utt.length - start))  # none past the utterance's end
        utt.drawn += m
        out = np.zeros((n, UNIFORM_COLUMNS))
        if utt.uniforms is not None:
            u = utt.uniforms[start : start + m]
        elif utt.rng is not None:
            u = self.distribution.draw_uniforms(utt.rng, m)
        else:  # argmax: unused
            return out
        k = self.distribution.uniforms_per_sample
        out[: len(u), :k] = u.reshape(len(u), k)
        return out

    @staticmethod
    def _check_sampling(temperature: float, argmax: bool, voiced_temperature: float | None) -> None:
        for name, value in (("temperature", temperature), ("voiced_temperature", voiced_temperature)):
            if value is not None and not argmax and not (value > 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be > 0 (use argmax=True for greedy decoding), got {value}")

    def _setup_temperature(self, utts: list[_Utterance], temperature: float, voiced_temperature: float | None) -> None:
        """Each sample's temperature: ``voiced_temperature`` where a pitch model's contour is
        voiced (LPCNet's lower temperature on voiced speech: less noise between the harmonics),
        ``temperature`` elsewhere and for a model without pitch."""
        for utt in utts:
            utt.temperature = np.full(utt.length, float(temperature))
            if voiced_temperature is not None and utt.f0 is not None:
                voiced = pitch.sample_f0(utt.f0, self.hop, utt.length) > 0
                utt.temperature[voiced] = float(voiced_temperature)

    # -- public API ---------------------------------------------------------------------------

    def generate(
        self,
        codes: Sequence[Tensor | np.ndarray],
        speakers: Sequence[int] | None,
        *,
        seed: int = 0,
        temperature: float = 1.0,
        argmax: bool = False,
        uniforms: Sequence[np.ndarray] | None = None,
        progress: bool = False,
        first_index: int = 0,
        f0: Sequence[np.ndarray] | None = None,
        excitation: Sequence[np.ndarray] | None = None,
        voiced_temperature: float | None = None,
    ) -> list[np.ndarray]:
        """Decode utterances: ``codes[i]`` (levels, frames_i) units (the first levels of the
        model's codebooks: 1 with one codebook), ``speakers[i]`` a speaker index
        (None for a model without speakers). Returns per utterance float32 audio
        (frames_i * hop,) in [-1, 1].

        f0: a pitch model's contours, per utterance (frames_i,) Hz (0 = unvoiced) in the
        register of the voice decoded (its speaker's: see pitch.denormalise); the excitation
        of pitch="excitation" is built from it, its noise from
        ``np.random.default_rng([seed, first_index + i, pitch.EXCITATION_STREAM])``, unless
        ``excitation`` gives it, per utterance (2 * harmonics, frames_i * hop).

        uniforms: optional, per utterance (frames_i * hop,) (categorical output) or
        (frames_i * hop, 2) (logistic mixture); by default drawn from
        ``np.random.default_rng([seed, first_index + i])``. ``argmax=True`` decodes greedily
        (ignores uniforms and temperatures). ``voiced_temperature`` (None = ``temperature``)
        samples the voiced samples of a pitch model's contour. ``progress`` shows a tqdm bar
        over samples.
        """
        self._check_sampling(temperature, argmax, voiced_temperature)
        utts = self._utterances(codes, speakers, f0)
        self._setup_randomness(utts, seed, first_index, uniforms, argmax)
        self._setup_excitation(utts, seed, first_index, excitation)
        self._setup_temperature(utts, temperature, voiced_temperature)
        if not utts:
            return []
        for utt in utts:
            utt.out = np.zeros(utt.length, np.float32)
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(
                total=sum(u.length for u in utts), unit="sample", unit_scale=True, desc="generate", dynamic_ncols=True
            )
        try:
            groups = self._groups(utts)
            if len(groups) == 1:
                self._run_group(groups[0], argmax, bar)
            else:
                with concurrent.futures.ThreadPoolExecutor(len(groups)) as pool:
                    for f in [pool.submit(self._run_group, g, argmax, bar) for g in groups]:
                        f.result()
        finally:
            if bar is not None:
                bar.close()
        return [u.out for u in utts]

    def stream(
        self,
        codes: Tensor | np.ndarray,
        speaker: int | None,
        *,
        chunk_frames: int,
        seed: int = 0,
        temperature: float = 1.0,
        argmax: bool = False,
        uniforms: np.ndarray | None = None,
        first_index: int = 0,
        f0: np.ndarray | None = None,
        excitation: np.ndarray | None = None,
        voiced_temperature: float | None = None,
    ) -> Iterator[np.ndarray]:
        """Decode one utterance chunk by chunk: yields float32 audio of ``chunk_frames * hop``
        samples (the last one shorter); the concatenation equals :meth:`generate` with the same
        seed / uniforms. State (ring buffers, the previous sample) carries across chunks."""
        if int(chunk_frames) != chunk_frames or chunk_frames < 1:
            raise ValueError(f"chunk_frames must be a positive integer, got {chunk_frames!r}")
        self._check_sampling(temperature, argmax, voiced_temperature)
        (utt,) = self._utterances([codes], [speaker], None if f0 is None else [f0])  # bad inputs raise here
        self._setup_randomness([utt], seed, first_index, None if uniforms is None else [uniforms], argmax)
        self._setup_excitation([utt], seed, first_index, None if excitation is None else [excitation])
        self._setup_temperature([utt], temperature, voiced_temperature)
        return self._stream(utt, int(chunk_frames) * self.hop, argmax)

    def _stream(self, utt: _Utterance, step: int, argmax: bool) -> Iterator[np.ndarray]:
        session = self._session([utt], argmax)
        for t0 in range(0, utt.length, step):
            t1 = min(t0 + step, utt.length)
            yield session.advance(t1 - t0)[0][: t1 - t0].copy()

    @torch.no_grad()
    def teacher_forced_logits(
        self,
        audio_classes: Tensor,
        codes: Tensor,
        speakers: Tensor | None,
        f0: Tensor | None = None,
        excitation: Tensor | None = None,
    ) -> Tensor:
        """Logits (B, C, T) of the incremental path fed the TRUE previous samples: mu-law
        ``audio_classes`` (B, T) int64, ``codes`` (B, levels, frames) with T <= frames * hop,
        ``speakers`` (B,), a pitch model's ``f0`` (B, frames) Hz and with pitch="excitation"
        the ``excitation`` (B, 2 * harmonics, frames * hop). Equals ``model.decoder_logits``
        up to float rounding."""
        x = torch.as_tensor(audio_classes)
        codes = torch.as_tensor(codes)
        if x.dim() != 2 or codes.dim() != 3 or x.shape[0] != codes.shape[0]:
            raise ValueError(
                f"audio_classes must be (B, T) and codes (B, levels, frames), got {tuple(x.shape)} and "
                f"{tuple(codes.shape)}"
            )
        B, T = x.shape
        if T > codes.shape[2] * self.hop:
            raise ValueError(f"T={T} samples but codes cover {codes.shape[2]} frames x hop {self.hop}")
        if x.numel() and (x.min() < 0 or x.max() >= self.decoder.mu_law_channels):
            raise ValueError(f"audio_classes must be mu-law classes in [0, {self.decoder.mu_law_channels})")
        spk = None if speakers is None else [int(s) for s in torch.as_tensor(speakers).reshape(-1)]
        utts = self._utterances(list(codes), spk, None if f0 is None else list(torch.as_tensor(f0)))
        if self.model.uses_excitation and excitation is None:
            raise ValueError("this model reads an excitation (pitch='excitation'): pass the one to force")
        self._setup_excitation(
            utts, 0, 0, None if excitation is None else [e.detach().cpu().numpy() for e in torch.as_tensor(excitation)]
        )
        for utt in utts:  # stop at T: lengths as given
            utt.length = T
        self._setup_temperature(utts, 1.0, None)
        session = self._session(utts, True, teacher=True)
        x = x.cpu().numpy().astype(np.int64)
        pieces = [session.advance(min(self.chunk_samples, T - t0), teacher=x) for t0 in range(0, T, self.chunk_samples)]
        if not pieces:
            return torch.zeros(B, self.out_channels, 0)
        return torch.cat(pieces, dim=2)

    # -- backends -----------------------------------------------------------------------------

    def _groups(self, utts: list[_Utterance]) -> list[list[_Utterance]]:
        """Utterances split into groups of about equal total length, one per thread (numba)."""
        if self.backend == "torch" or self.threads == 1 or len(utts) <= 1:
            return [utts]
        n = min(self.threads, len(utts))
        groups: list[list[_Utterance]] = [[] for _ in range(n)]
        load = [0] * n
        for utt in sorted(utts, key=lambda u: -u.length):
            k = load.index(min(load))
            groups[k].append(utt)
            load[k] += utt.length
        return [g for g in groups if g]

    def _session(self, utts, argmax, teacher=False):
        cls = _TorchSession if self.backend == "torch" else _KernelSession
        return cls(self, utts, argmax, teacher)

    def _run_group(self, utts: list[_Utterance], argmax: bool, bar) -> None:
        session = self._session(utts, argmax)
        total = max(u.length for u in utts)
        for t0 in range(0, total, self.chunk_samples):
            n = min(self.chunk_samples, total - t0)
            out = session.advance(n)
            for k, utt in enumerate(session.utts):
                m = min(t0 + n, utt.length) - t0
                if m > 0:
                    utt.out[t0 : t0 + m] = out[k][:m]
            if bar is not None:
                bar.update(sum(max(0, min(t0 + n, u.length) - t0) for u in utts))


class _Session:
    """Decoding state of a group of utterances; ``advance(n)`` runs n more steps."""

    def __init__(self, gen: Generator, utts: list[_Utterance], argmax: bool, teacher: bool):
        self.gen = gen
        # non-increasing lengths: the kernel drops finished streams off the end
        order = sorted(range(len(utts)), key=lambda k: -utts[k].length)
        self.order = order
        self.utts = [utts[k] for k in order]
        self.argmax = bool(argmax)
        self.teacher = teacher
        self.t = 0

    def advance(self, n: int, teacher: np.ndarray | None = None):
        """Run n more steps: per utterance (in ``self.utts`` order) the float32 audio, or in
        teacher-forcing mode the logits (B, C, n) in the caller's order. Works in pieces that
        bound the per-call conditioning table (per sample for "transposed")."""
        piece = 1024 if self.gen.transposed else self.gen.chunk_samples
        pieces = [self._advance(min(piece, n - k), teacher) for k in range(0, n, piece)]
        if self.teacher:
            return pieces[0] if len(pieces) == 1 else torch.cat(pieces, dim=2)
        if len(pieces) == 1:
            return pieces[0]
        return [np.concatenate([p[k] for p in pieces]) for k in range(len(self.utts))]

    def _feature_rows(self, t0: int, t1: int, dtype, device) -> tuple[Tensor, int]:
        """(nb, rows, D) features for samples [t0, t1) (zero rows past an utterance's end) and
        the absolute index of row 0."""
        g = self.gen
        row0 = t0 // g.feat_hop
        rows = -(-t1 // g.feat_hop) - row0
        D = g._torch_weights.wc.shape[0]
        out = torch.zeros(len(self.utts), rows, D, dtype=dtype, device=device)
        for k, utt in enumerate(self.utts):
            f = g._features(utt, t0, t1)
            out[k, : f.shape[0]] = f
        return out, row0

    def _uniforms(self, n: int) -> np.ndarray:
        return np.stack([self.gen._take_uniforms(u, n) for u in self.utts])

    def _temperature_rows(self, t0: int, t1: int) -> np.ndarray:
        """(nb, t1 - t0) float64: the sampling temperature of samples [t0, t1) (1 past an
        utterance's end, where nothing is sampled)."""
        out = np.ones((len(self.utts), t1 - t0))
        for k, utt in enumerate(self.utts):
            rows = utt.temperature[t0:t1]
            out[k, : len(rows)] = rows
        return out

    def _source_rows(self, t0: int, t1: int) -> np.ndarray:
        """(nb, t1 - t0, E) float32: the excitation of samples [t0, t1) (E = 0 without one;
        zeros past an utterance's end)."""
        E = self.gen.decoder.source_channels
        out = np.zeros((len(self.utts), t1 - t0, E), np.float32)
        if E:
            for k, utt in enumerate(self.utts):
                rows = utt.source[t0:t1]
                out[k, : len(rows)] = rows
        return out

    def _audio(self, classes: np.ndarray, audio: np.ndarray) -> list[np.ndarray]:
        """Per utterance (in the order of ``self.utts``) the float32 audio of a chunk."""
        d = self.gen.distribution
        samples = audio if d.samples_are_audio else classes
        return [d.to_audio(samples[k]) for k in range(len(self.utts))]


class _KernelSession(_Session):
    #: groups of fewer streams compute the past taps a block of ``dilation`` steps at a time
    #: (one stream's weights then fit in L2); larger ones share each weight load across streams
    BLOCK_BELOW = 4

    def __init__(self, gen, utts, argmax, teacher):
        super().__init__(gen, utts, argmax, teacher)
        nb = len(self.utts)
        R, G = gen.residual_channels, gen.gate_channels
        block_past = nb < self.BLOCK_BELOW
        self.streams = gen._kernel.Streams(
            ring=np.zeros((nb, gen._ring_slots, R), np.float32),
            past=np.zeros((nb, sum(gen.dilations) if block_past else 1, G), np.float32),
            prev=np.full(nb, gen.decoder.initial_class, np.int64),
            consts=np.ascontiguousarray(torch.stack([u.const for u in self.utts]).to("cpu", torch.float32).numpy())
            if nb
            else np.zeros((0, gen.num_layers * G), np.float32),
            lengths=np.asarray([u.length for u in self.utts], np.int64),
            block_past=block_past,
        )
        self.mode = gen._kernel.MODE_TEACHER if teacher else gen._kernel.SAMPLING_MODES[gen.distribution.kind]

    def _advance(self, n: int, teacher: np.ndarray | None):
        g, k = self.gen, self.gen._kernel
        t0, t1 = self.t, self.t + n
        nb = len(self.utts)
        feats, row0 = self._feature_rows(t0, t1, torch.float32, "cpu")
        feats = np.ascontiguousarray(feats.numpy())
        uniforms = np.zeros((nb, n, UNIFORM_COLUMNS)) if self.teacher or self.argmax else self._uniforms(n)
        out_class = np.zeros((nb, n), np.int64)
        out_audio = np.zeros((nb, n), np.float32)
        if self.teacher:
            out_logits = np.zeros((nb, n, g.out_channels), np.float32)
            tf = np.ascontiguousarray(teacher[self.order][:, t0:t1].astype(np.int64))
        else:
            out_logits = np.zeros((nb, 1, g.out_channels), np.float32)
            tf = np.zeros((nb, 1), np.int64)
        k.run_steps(
            g._np_weights,
            g._geometry,
            self.streams,
            feats,
            row0,
            g.feat_hop,
            self._source_rows(t0, t1),
            t0,
            t1,
            uniforms,
            self.mode,
            self._temperature_rows(t0, t1),
            self.argmax,
            tf,
            out_class,
            out_audio,
            out_logits,
        )
        self.t = t1
        if self.teacher:  # back to the caller's order, (B, C, T)
            inv = np.argsort(self.order)
            return torch.from_numpy(out_logits[inv].transpose(0, 2, 1).copy())
        return self._audio(out_class, out_audio)


class _TorchSession(_Session):
    """The recurrence in torch ops over the group's utterances. Every index a step uses (the
    sample t, its column in the chunk, the ring slots, the conditioning row) lives in a device
    tensor that the step advances itself, so a step is the same sequence of kernels at every
    t: on CUDA, sampling captures one step as a CUDA graph (the first ``GRAPH_WARMUP`` steps
    run eagerly) and replays it, one launch per sample instead of hundreds."""

    GRAPH_WARMUP = 3  # eager steps before capture (cuBLAS workspaces, allocator pools settle)

    def __init__(self, gen, utts, argmax, teacher):
        super().__init__(gen, utts, argmax, teacher)
        w = gen._torch_weights
        self.w = w
        self.dtype, self.device = w.wd.dtype, w.wd.device
        nb = len(self.utts)
        R, K = gen.residual_channels, gen.kernel_size
        dev = self.device
        self.rings = [torch.zeros(nb, n, R, dtype=self.dtype, device=dev) for n in gen.ring_len]
        self.ring_len = torch.tensor(gen.ring_len, device=dev)  # (L,)
        # tap m of layer i reads the input at t - (K - 1 - m) * dilation: (L, K)
        self.tap_back = torch.tensor([[(K - 1 - m) * d for m in range(K)] for d in gen.dilations], device=dev)
        self.res_skip = [torch.cat([w.res_w[i], w.skip_w[i]], dim=1) for i in range(gen.num_layers)]  # (H, R + S)
        self.res_skip_b = [torch.cat([w.res_b[i], torch.zeros_like(w.skip_b)]) for i in range(gen.num_layers)]
        self.prev = torch.full((nb,), gen.decoder.initial_class, dtype=torch.long, device=dev)
        self.consts = torch.stack([u.const for u in self.utts]).to(self.dtype) if nb else None
        self.t_now = torch.zeros(1, dtype=torch.long, device=dev)  # the step's sample index
        self.j_now = torch.zeros(1, dtype=torch.long, device=dev)  # its column in the chunk's buffers
        self.row0 = torch.zeros(1, dtype=torch.long, device=dev)
        self.buffers: dict[str, Tensor] = {}
        self.graph = None
        self.graph_failed = False
        self.use_graph = dev.type == "cuda" and not teacher and nb > 0

    def _buffer(self, name: str, shape: tuple, dtype) -> Tensor:
        """A buffer the step reads or writes, kept across chunks at the first chunk's size
        (the largest: later ones only fill a prefix), so a captured graph's addresses hold."""
        buf = self.buffers.get(name)
        if buf is None or buf.dtype != dtype or any(a < b for a, b in zip(buf.shape, shape)) or buf.dim() != len(shape):
            self.graph = None  # it read the old buffer: capture again at the next chunk
            buf = self.buffers[name] = torch.zeros(shape, dtype=dtype, device=self.device)
        return buf

    @torch.no_grad()
    def _advance(self, n: int, teacher: np.ndarray | None):
        g, w = self.gen, self.w
        t0, t1 = self.t, self.t + n
        nb = len(self.utts)
        feats, row0 = self._feature_rows(t0, t1, self.dtype, self.device)
        table = self._buffer("table", (nb, feats.shape[1], g.num_layers * g.gate_channels), self.dtype)
        table[:, : feats.shape[1]] = torch.matmul(feats, w.wc) + self.consts.unsqueeze(1)  # (nb, rows, L*G)
        if g.decoder.source_channels:  # the excitation's projections of the chunk, (nb, n, L*G)
            src = torch.from_numpy(self._source_rows(t0, t1)).to(self.device, self.dtype)
            self._buffer("source", (nb, n, g.num_layers * g.gate_channels), self.dtype)[:, :n] = src @ w.ws
        self.row0.fill_(row0)
        self.t_now.fill_(t0)
        self.j_now.zero_()
        if not (self.teacher or self.argmax):  # step-major, so that each step's (nb,) or (nb, 2) slice is contiguous
            u = self._uniforms(n).transpose(1, 0, 2)
            u = torch.from_numpy(np.ascontiguousarray(g.distribution.take_uniforms(u))).to(self.device)
            self._buffer("uniforms", tuple(u.shape), u.dtype)[:n] = u
            temperature = torch.from_numpy(np.ascontiguousarray(self._temperature_rows(t0, t1).T)).to(self.device)
            self._buffer("temperature", (n, nb), torch.float64)[:n] = temperature
        self._buffer("zeros_u", (nb, UNIFORM_COLUMNS), torch.float64)
        if self.teacher:
            tf = torch.from_numpy(np.ascontiguousarray(teacher[self.order][:, t0:t1])).to(self.device)
            self._buffer("teacher", (nb, n), torch.long)[:, :n] = tf
            self._buffer("logits", (nb, g.out_channels, n), self.dtype)
        self._buffer("samples", (nb, n), torch.float32 if g.distribution.samples_are_audio else torch.long)
        self._buffer("classes", (nb, n), torch.long)
        with warnings.catch_warnings():
            # the mixture's sampler takes u[:, 0] of a (B, 2) tensor: torch warns about the copy
            warnings.filterwarnings("ignore", message=r"torch\.searchsorted\(\): input value tensor is non-contiguous")
            self._run(n)
        self.t = t1
        if self.teacher:
            inv = torch.as_tensor(np.argsort(self.order), device=self.device)
            return self.buffers["logits"][inv, :, :n]
        classes = self.buffers["classes"][:, :n].cpu().numpy()
        audio = self.buffers["samples"][:, :n].cpu().numpy() if g.distribution.samples_are_audio else None
        return self._audio(classes, audio)

    def _run(self, n: int) -> None:
        """n steps: eagerly, or (CUDA, sampling) by replaying the captured step."""
        done = 0
        if self.use_graph and self.graph is None and not self.graph_failed:
            while done < min(n, self.GRAPH_WARMUP):
                self._step()
                done += 1
            if done < n:
                self._capture()
        if self.graph is None:
            for _ in range(n - done):
                self._step()
            return
        for _ in range(n - done):
            self.graph.replay()

    def _capture(self) -> None:
        """Record one step as a CUDA graph (recording runs nothing: t and the state stay put).
        A failure leaves the eager steps in charge, with a warning."""
        try:
            graph = torch.cuda.CUDAGraph()
            torch.cuda.synchronize(self.device)
            with torch.cuda.graph(graph):
                self._step()
            self.graph = graph
        except Exception as e:  # the eager path computes the same thing
            self.graph_failed = True
            warnings.warn(f"CUDA graph capture of the generation step failed, stepping eagerly: {e}")

    def _step(self) -> None:
        """One sample for every utterance of the group, at t = ``t_now``; advances t_now and j_now."""
        g, w, b = self.gen, self.w, self.buffers
        dec = g.decoder
        nb = len(self.utts)
        L, G, K, R = g.num_layers, g.gate_channels, g.kernel_size, g.residual_channels
        H = G // 2
        t, j = self.t_now, self.j_now
        bias = b["table"].index_select(1, torch.div(t, g.feat_hop, rounding_mode="floor") - self.row0).view(nb, L, G)
        if "source" in b:
            bias = bias + b["source"].index_select(1, j).view(nb, L, G)
        h = w.emb.index_select(0, self.prev)
        slots = t % self.ring_len  # (L,): where each layer's ring takes this step's input
        tap_slots = (t - self.tap_back) % self.ring_len.unsqueeze(1)  # (L, K): the slots its taps read
        skip = None
        for i in range(L):
            ring = self.rings[i]
            ring.index_copy_(1, slots[i : i + 1], h.unsqueeze(1))
            taps = ring.index_select(1, tap_slots[i]).reshape(nb, K * R)
            a = torch.addmm(bias[:, i], taps, w.wd[i])
            z = torch.tanh(a[:, :H]) * torch.sigmoid(a[:, H:])
            rs = torch.addmm(self.res_skip_b[i], z, self.res_skip[i])  # (nb, R + S): residual | skip
            skip = rs[:, R:] if skip is None else skip + rs[:, R:]
            if i < L - 1:
                h = (h + rs[:, :R]) * RESIDUAL_SCALE
        out = F.relu((skip + w.skip_b) * dec.skip_scale)
        logits = torch.addmm(w.out_b, F.relu(torch.addmm(w.hid_b, out, w.hid_w)), w.out_w)
        if self.teacher:
            b["logits"].index_copy_(2, j, logits.unsqueeze(2))
            self.prev.copy_(b["teacher"].index_select(1, j).squeeze(1))
        else:
            if self.argmax:
                u = g.distribution.take_uniforms(b["zeros_u"])
            else:
                u = b["uniforms"].index_select(0, j).squeeze(0)
            temperature = 1.0 if self.argmax else b["temperature"].index_select(0, j).squeeze(0)  # (nb,)
            s = dec.distribution.sample(logits, u, temperature, self.argmax)
            c = dec.distribution.to_class(s)
            b["samples"].index_copy_(1, j, s.unsqueeze(1).to(b["samples"].dtype))
            b["classes"].index_copy_(1, j, c.unsqueeze(1))
            self.prev.copy_(c)
        t.add_(1)
        j.add_(1)
