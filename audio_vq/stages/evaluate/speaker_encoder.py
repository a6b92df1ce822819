"""Speaker similarity with a pretrained speaker-verification encoder (resemblyzer's d-vectors).

resemblyzer (Resemble AI) ships a GE2E speaker encoder (Wan et al. 2018: 3 LSTM layers over 40
mel bands, 256-dim L2-normalised embeddings, trained for speaker verification) with its weights
in the wheel. SECS, the speaker-encoder cosine similarity voice-conversion papers report, is the
cosine between two embeddings; a speaker's embedding is the L2-normalised mean of its
utterances' (resemblyzer's ``embed_speaker``).

Each signal is resampled to 16 kHz, brought to -30 dBFS (up or down: resemblyzer's own
``preprocess_wav`` only raises quiet signals, and its mel features are not logarithmic, so a
louder copy would embed differently) and passed through ``preprocess_wav`` (long silences
trimmed by WebRTC VAD). When trimming leaves less than MIN_TRIMMED_SECONDS (generated noise can
read as all silence), the levelled untrimmed signal is embedded instead, so every signal gets
an embedding.

The weights are read with ``torch.load(weights_only=True)`` before resemblyzer loads the same
file: a file that needs code unpickled is refused. resemblyzer, its VAD and pyworld's
pkg_resources need the ``voice`` extra; :func:`unavailable` says why it cannot be used.
"""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path
from typing import Mapping

import numpy as np
import torch

from ...audio import resample

ENCODER_RATE = 16_000  # resemblyzer's sampling_rate
MIN_TRIMMED_SECONDS = 0.2
WEIGHTS_FILE = "pretrained.pt"
INSTRUMENT = "resemblyzer GE2E d-vector (256-dim), cosine similarity"


class SpeakerEncoderError(RuntimeError):
    """The encoder cannot be loaded: not installed, or weights that would need unpickling."""


def _weights_path() -> Path:
    spec = importlib.util.find_spec("resemblyzer")
    if spec is None or not spec.submodule_search_locations:
        raise SpeakerEncoderError(
            "resemblyzer is not installed; install the voice extra: pip install 'audio_vq[voice]'"
        )
    return Path(list(spec.submodule_search_locations)[0]) / WEIGHTS_FILE


def unavailable() -> str | None:
    """Why the pretrained speaker encoder cannot be used here (None when it can)."""
    try:
        _weights_path()
        _import()
    except (SpeakerEncoderError, ImportError) as e:
        return str(e)
    return None


def _import():
    with warnings.catch_warnings():  # its VAD and scipy imports raise deprecation warnings
        warnings.simplefilter("ignore")
        import resemblyzer
    return resemblyzer


class SpeakerEncoder:
    """Utterance embeddings (256,) from resemblyzer's pretrained encoder, on CPU by default."""

    def __init__(self, device: str = "cpu"):
        path = _weights_path()
        try:
            torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - any refusal means we will not load it
            raise SpeakerEncoderError(
                f"{path}: refused, it cannot be read as plain tensors (torch.load weights_only=True: {e})"
            ) from None
        self._resemblyzer = _import()
        # The file just passed the weights-only check, so resemblyzer's own load of it
        # can only rebuild tensors and plain containers.
        self._encoder = self._resemblyzer.VoiceEncoder(device=device, verbose=False, weights_fpath=path)

    def embed(self, audio: np.ndarray, sr: int) -> np.ndarray:
        """(256,) unit-norm embedding of one utterance (T,) at ``sr``."""
        x = np.asarray(audio, dtype=np.float32)
        if x.ndim != 1 or x.size == 0 or not np.isfinite(x).all():
            raise ValueError(f"the speaker encoder needs finite mono audio (T,), got shape {x.shape}")
        if sr != ENCODER_RATE:
            x = resample(x, sr, ENCODER_RATE).astype(np.float32)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            levelled = self._resemblyzer.audio.normalize_volume(x, self._resemblyzer.hparams.audio_norm_target_dBFS)
            wav = self._resemblyzer.preprocess_wav(levelled)
            if wav.size < MIN_TRIMMED_SECONDS * ENCODER_RATE:
                wav = levelled
            return np.asarray(self._encoder.embed_utterance(wav.astype(np.float32)), dtype=np.float64)


def speaker_embedding(embeddings: np.ndarray) -> np.ndarray:
    """A speaker's embedding: the L2-normalised mean of its utterances' (N, 256) embeddings."""
    mean = np.asarray(embeddings, dtype=np.float64).mean(axis=0)
    return mean / max(np.linalg.norm(mean), np.finfo(float).tiny)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two embeddings (SECS), in [-1, 1]; 1 for the same direction."""
    return float(np.dot(a, b) / max(np.linalg.norm(a) * np.linalg.norm(b), np.finfo(float).tiny))


def speaker_embeddings(
    embeddings: Mapping[str, np.ndarray], speakers: Mapping[str, str], exclude: str | None = None
) -> dict[str, np.ndarray]:
    """Per speaker, :func:`speaker_embedding` over the utterances (id -> (256,)) of that speaker,
    leaving out utterance ``exclude`` (so an utterance is not compared with itself)."""
    by: dict[str, list[np.ndarray]] = {}
    for uid, e in embeddings.items():
        if uid != exclude:
            by.setdefault(speakers[uid], []).append(e)
    return {s: speaker_embedding(np.stack(v)) for s, v in by.items()}
