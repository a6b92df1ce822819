"""Speaker probes: how much speaker identity a signal, or a model's codes, carry.

Two questions, two probes:

- :class:`SpeakerProbe` on audio. Fit on real utterances of the corpus's speakers; the fraction
  of *converted* utterances it classifies as their target speaker measures how well conversion
  takes on the target voice (higher is better; chance is 1 / speakers).
- :func:`code_speaker_probe` on code histograms. Cross-validated accuracy of predicting an
  utterance's speaker from how often it uses each code: lower means fewer speaker cues in the
  codes (the paper's claim is that the decoder's speaker embedding carries the voice).

Utterance features (:func:`utterance_features`): 20 MFCCs c1..c20 per frame (c0, the frame's
level, is left out so a gain change does not move the features; n_fft 1024 / hop 256 at 16 kHz,
80 Slaney mels), summarised per utterance by their mean (20), standard deviation (20) and the
standard deviation of their first differences (deltas, 20): 60 numbers. The probe standardises
each (zero mean, unit variance on its training utterances) before a multinomial logistic
regression. Deterministic: lbfgs with a fixed seed; folds are shuffled with ``seed``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import librosa
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from ...audio import SAMPLE_RATE, resample
from . import InsufficientData

REFERENCE_RATE = 16_000  # frame sizes are stated at this rate and scaled with sr
N_FFT = 1024
HOP = 256
N_MELS = 80
N_MFCC = 20  # c1..c20 kept (c0 is computed and dropped)
DELTA_WIDTH = 9  # frames in librosa's Savitzky-Golay delta window (its default)
FEATURE_DIM = 3 * N_MFCC  # mean, std, delta std

REGULARISATION = 1.0  # logistic regression's C (inverse L2 strength), sklearn's default
MAX_ITERATIONS = 2000  # lbfgs; the problems here are small, this only guards convergence
MIN_UTTERANCES_PER_SPEAKER = 2  # fewer cannot be both trained on and tested in cross-validation
MIN_FOLDS = 2


def _scaled(samples: int, sr: int) -> int:
    return max(1, int(round(samples * sr / REFERENCE_RATE)))


def utterance_features(audio: np.ndarray, sr: int = SAMPLE_RATE) -> np.ndarray:
    """The (FEATURE_DIM,) = (60,) speaker features of one utterance (T,): mean and std of MFCC
    c1..c20 over frames, then the std of their deltas. Raw, not yet standardised."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1 or audio.size == 0 or not np.isfinite(audio).all():
        raise ValueError(f"speaker features need finite mono audio (T,), got shape {audio.shape}")
    n_fft = _scaled(N_FFT, sr)
    mfcc = librosa.feature.mfcc(
        y=audio, sr=sr, n_mfcc=N_MFCC + 1, n_fft=n_fft, win_length=n_fft, hop_length=_scaled(HOP, sr), n_mels=N_MELS
    )[1:]  # (20, frames)
    if mfcc.shape[1] >= DELTA_WIDTH:
        deltas = librosa.feature.delta(mfcc, width=DELTA_WIDTH, axis=1)
    else:  # too short for the smoothing window: plain first differences
        deltas = np.diff(mfcc, axis=1) if mfcc.shape[1] > 1 else np.zeros_like(mfcc)
    return np.concatenate([mfcc.mean(axis=1), mfcc.std(axis=1), deltas.std(axis=1)]).astype(np.float64)


def speaker_features(audios: list[np.ndarray], sr: int = SAMPLE_RATE) -> np.ndarray:
    """(N, FEATURE_DIM) features of N utterances (see :func:`utterance_features`)."""
    if len(audios) == 0:
        return np.zeros((0, FEATURE_DIM))
    return np.stack([utterance_features(a, sr) for a in audios])


def _classifier(seed: int) -> Pipeline:
    """Standardise, then multinomial logistic regression; deterministic for a seed."""
    return make_pipeline(
        StandardScaler(), LogisticRegression(C=REGULARISATION, max_iter=MAX_ITERATIONS, random_state=seed)
    )


class SpeakerProbe:
    """Which speaker does an utterance sound like? (Logistic regression on utterance features.)

    ``fit`` on real audio of at least two speakers at a rate ``sr``; later audio at another rate
    is resampled to it, so features always describe the same frequencies.
    """

    def __init__(self, seed: int = 0):
        self.seed = seed
        self.sample_rate: int | None = None
        self._model: Pipeline | None = None

    @property
    def speakers(self) -> list[str]:
        """The speakers the probe knows, sorted."""
        self._check_fitted()
        return [str(s) for s in self._model.classes_]

    def fit(self, audios: list[np.ndarray], speakers: list[str], sr: int = SAMPLE_RATE) -> "SpeakerProbe":
        """Train on utterances (T,) and their speaker names; returns self."""
        if len(audios) != len(speakers):
            raise ValueError(f"{len(audios)} utterances but {len(speakers)} speaker labels")
        if len(set(speakers)) < 2:
            raise InsufficientData(
                f"a speaker probe needs utterances of at least 2 speakers, got {sorted(set(speakers))}"
            )
        self.sample_rate = sr
        self._model = _classifier(self.seed).fit(speaker_features(audios, sr), np.asarray(speakers, dtype=str))
        return self

    def predict(self, audios: list[np.ndarray], sr: int = SAMPLE_RATE) -> list[str]:
        """The most likely known speaker of each utterance."""
        self._check_fitted()
        if len(audios) == 0:
            return []
        if sr != self.sample_rate:
            audios = [resample(a, sr, self.sample_rate) for a in audios]
        return [str(s) for s in self._model.predict(speaker_features(audios, self.sample_rate))]

    def score(self, audios: list[np.ndarray], speakers: list[str], sr: int = SAMPLE_RATE) -> float:
        """Fraction (0..1) of utterances classified as the given speaker; higher is better.

        For conversion pass the converted audio with its TARGET speakers: the result is the
        conversion's speaker similarity as the probe hears it.
        """
        if len(audios) != len(speakers):
            raise ValueError(f"{len(audios)} utterances but {len(speakers)} speaker labels")
        if len(audios) == 0:
            raise ValueError("no utterances to score")
        unknown = sorted(set(speakers) - set(self.speakers))
        if unknown:
            raise ValueError(f"speakers unknown to the probe (not fitted on): {unknown}")
        predicted = self.predict(audios, sr)
        return float(np.mean([p == s for p, s in zip(predicted, speakers)]))

    def _check_fitted(self) -> None:
        if self._model is None:
            raise RuntimeError("SpeakerProbe is not fitted: call fit() first")


@dataclass(frozen=True)
class CodeProbeResult:
    """Outcome of :func:`code_speaker_probe`. ``accuracy`` is None when it could not be
    measured, and ``reason`` says why. Chance levels describe the utterances actually probed."""

    accuracy: float | None  # cross-validated, 0..1; lower = fewer speaker cues in the codes
    chance: float  # 1 / number of speakers probed
    majority: float  # share of the most frequent speaker: always guessing it scores this
    folds: int  # folds used (0 when not measured)
    num_utterances: int
    num_speakers: int
    dropped_speakers: list[str] = field(default_factory=list)  # too few utterances to probe
    reason: str | None = None


def code_speaker_probe(histograms: np.ndarray, speakers: list[str], folds: int = 5, seed: int = 0) -> CodeProbeResult:
    """Cross-validated accuracy of predicting an utterance's speaker from its code histogram.

    ``histograms`` (N, K): per utterance, the fraction of its frames assigned to each of the K
    codes (rows sum to 1). Speakers with fewer than 2 utterances are dropped (listed in the
    result); ``folds`` falls to the smallest speaker's utterance count when that is lower
    (stratified folds need one utterance of every speaker per fold). With fewer than two
    speakers left, ``accuracy`` is None with a reason. Features are standardised inside each
    training fold before logistic regression, as in :class:`SpeakerProbe`.
    """
    h = np.asarray(histograms, dtype=np.float64)
    if h.ndim != 2:
        raise ValueError(f"histograms must be (N, K), got shape {h.shape}")
    if len(h) != len(speakers):
        raise ValueError(f"{len(h)} histograms but {len(speakers)} speaker labels")
    if not np.isfinite(h).all() or (h < 0).any():
        raise ValueError("histograms must be finite and non-negative")
    if folds < MIN_FOLDS:
        raise ValueError(f"folds must be >= {MIN_FOLDS}, got {folds}")

    labels = np.asarray(speakers, dtype=str)
    counts = Counter(labels.tolist())
    dropped = sorted(s for s, n in counts.items() if n < MIN_UTTERANCES_PER_SPEAKER)
    keep = ~np.isin(labels, dropped)
    h, labels = h[keep], labels[keep]
    kept = Counter(labels.tolist())
    chance = 1.0 / len(kept) if kept else 0.0
    majority = max(kept.values()) / len(labels) if kept else 0.0

    def result(accuracy: float | None, used_folds: int, reason: str | None = None) -> CodeProbeResult:
        return CodeProbeResult(accuracy, chance, majority, used_folds, len(labels), len(kept), dropped, reason)

    if len(kept) < 2:
        return result(
            None,
            0,
            f"needs at least 2 speakers with >= {MIN_UTTERANCES_PER_SPEAKER} "
            f"utterances each, found {len(kept)} (dropped: {dropped or 'none'})",
        )
    used_folds = min(folds, min(kept.values()))
    splitter = StratifiedKFold(n_splits=used_folds, shuffle=True, random_state=seed)
    correct = 0
    for train, test in splitter.split(h, labels):
        model = _classifier(seed).fit(h[train], labels[train])
        correct += int(np.sum(model.predict(h[test]) == labels[test]))
    return result(correct / len(labels), used_folds)
