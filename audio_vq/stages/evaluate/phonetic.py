"""Phonetic quality of discrete units against frame-level phone labels.

- :func:`purity_pnmi`: phone purity, cluster purity and PNMI = I(phone; unit) / H(phone), as
  HuBERT's ``examples/hubert/measure_teacher_quality.py`` (fairseq) defines them.
- :func:`code_to_phone_accuracy`: the VQ-VAE paper's many-to-one accuracy (each code mapped to
  its most frequent phone on one half of the utterances, frame accuracy on the other half).
- Baselines at the same K and frame rate: :func:`random_units` and :func:`mfcc_kmeans_units`,
  and :func:`random_code_expectation`, what the metrics come to for random codes in expectation.

Frames whose phone is None (silence, or no alignment there) are left out of every metric.
"""

from __future__ import annotations

import math
import zlib
from typing import Mapping, Sequence

import numpy as np

from . import InsufficientData

# MFCC baseline: the usual ASR front end, 13 cepstra + deltas + delta-deltas over 40 mel bands.
NUM_MFCC = 13
NUM_MELS = 40  # more bands than FFT bins below ~1 kHz leaves empty filters at 16 kHz, n_fft 512
WINDOW_SECONDS = 0.025  # analysis window, unless the hop is longer (then the window = the hop)
DELTA_WIDTH = 9  # frames in librosa's delta regression window (its default)
MIN_DELTA_WIDTH = 3
STD_FLOOR = 1e-8  # a constant feature dimension is left unscaled rather than divided by zero
KMEANS_ITERS = 30
MAX_FIT_FRAMES = 100_000  # k-means is fitted on a seeded sample of at most this many frames
# Binomial sums of the random-code expectation run over mean +- TAIL_SDS standard deviations
# (+ TAIL_MARGIN counts, for tiny means): the mass left out is far below float precision.
TAIL_SDS = 12.0
TAIL_MARGIN = 12


# --- the joint counts and fairseq's metrics ---------------------------------------------------------


def contingency(
    phones: Sequence[str | None], units: Sequence[int] | np.ndarray, num_units: int
) -> tuple[np.ndarray, list[str]]:
    """Joint counts of (phone, unit) over frames: (counts (P, K) int64, the P phones sorted).

    ``phones`` (N,) holds a label or None per frame (None frames are ignored), ``units`` (N,)
    the code of each frame in [0, num_units).
    """
    units = np.asarray(units, dtype=np.int64)
    if len(phones) != len(units):
        raise ValueError(f"{len(phones)} phone labels for {len(units)} unit frames")
    if len(units) and (units.min() < 0 or units.max() >= num_units):
        raise ValueError(f"units must lie in [0, {num_units}), got [{units.min()}, {units.max()}]")
    keep = np.array([p is not None for p in phones], dtype=bool)
    labelled = [p for p in phones if p is not None]
    inventory = sorted(set(labelled))
    index = {p: i for i, p in enumerate(inventory)}
    rows = np.array([index[p] for p in labelled], dtype=np.int64)
    counts = np.zeros((len(inventory), num_units), dtype=np.int64)
    np.add.at(counts, (rows, units[keep]), 1)
    return counts, inventory


def purity_pnmi(counts: np.ndarray) -> dict[str, float]:
    """Phone purity, cluster purity and PNMI of joint counts (P phones, K units).

    With p(y, z) = counts / N (y: phone, z: unit), as fairseq's measure_teacher_quality.py:
    - ``phone_purity`` = sum_z max_y p(y, z): the mean over frames of how often a frame's unit
      means its most frequent phone (fairseq's "ref pur");
    - ``cluster_purity`` = sum_y max_z p(y, z): the same with the roles swapped ("hyp pur");
    - ``pnmi`` = I(y; z) / H(y) ("MI/H(ref)"), 1 when the unit determines the phone.
    fairseq adds 1e-8 inside its logarithms to dodge log 0; here zero cells are simply skipped,
    the same sums without the (< 1e-7) perturbation. Also returned: ``mutual_information_bits``,
    ``phone_entropy_bits``, ``unit_entropy_bits`` and ``frames``. PNMI is nan with one phone.
    """
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    if counts.ndim != 2:
        raise ValueError(f"purity needs a (phones, units) count table, got shape {counts.shape}")
    if total <= 0:
        raise InsufficientData("purity needs at least one labelled frame, got none")
    p = counts / total
    p_phone, p_unit = p.sum(axis=1), p.sum(axis=0)
    nz = p > 0
    outer = np.outer(p_phone, p_unit)
    mi = float((p[nz] * np.log2(p[nz] / outer[nz])).sum())
    h_phone, h_unit = entropy_bits(p_phone), entropy_bits(p_unit)
    return {
        "phone_purity": float(p.max(axis=0).sum()),
        "cluster_purity": float(p.max(axis=1).sum()),
        "pnmi": mi / h_phone if h_phone > 0 else float("nan"),
        "mutual_information_bits": mi,
        "phone_entropy_bits": h_phone,
        "unit_entropy_bits": h_unit,
        "frames": int(total),
    }


def entropy_bits(weights: np.ndarray) -> float:
    """Entropy in bits of the distribution proportional to ``weights`` (counts or probabilities)."""
    weights = np.asarray(weights, dtype=np.float64)
    p = weights[weights > 0] / weights.sum()
    return float(-(p * np.log2(p)).sum())


# --- the VQ-VAE paper's code-to-phone accuracy --------------------------------------------------


def code_to_phone_accuracy(
    phones_by_utt: Mapping[str, Sequence[str | None]],
    units_by_utt: Mapping[str, Sequence[int] | np.ndarray],
    seed: int = 0,
) -> dict[str, float | int]:
    """Many-to-one accuracy of codes as phone predictors, on held-out utterances.

    The ids present in both mappings are sorted and shuffled with ``seed``; half A (the first
    ceil(n / 2)) maps each code to its most frequent phone (ties: the phone first in sorted
    order), codes never seen in A map to A's most frequent phone, and ``accuracy`` is the fraction
    of half B's labelled frames whose code maps to their phone. ``chance`` is the accuracy of
    always answering A's most frequent phone. Fractions in [0, 1]; also frame and utterance
    counts of each half. Needs two utterances and labelled frames in both halves.
    """
    ids = sorted(set(phones_by_utt) & set(units_by_utt))
    if len(ids) < 2:
        raise InsufficientData(f"code-to-phone accuracy needs at least 2 utterances with labels, got {len(ids)}")
    order = np.random.default_rng(seed).permutation(len(ids))
    half = math.ceil(len(ids) / 2)
    train = [ids[i] for i in order[:half]]
    test = [ids[i] for i in order[half:]]
    inventory = sorted({p for uid in ids for p in phones_by_utt[uid] if p is not None})
    index = {p: i for i, p in enumerate(inventory)}
    train_phones, train_units = _labelled_frames(train, phones_by_utt, units_by_utt, index)
    test_phones, test_units = _labelled_frames(test, phones_by_utt, units_by_utt, index)
    if not len(train_phones) or not len(test_phones):
        raise InsufficientData("code-to-phone accuracy needs labelled frames in both halves of the utterances")
    num_units = int(max(train_units.max(), test_units.max())) + 1
    counts = np.zeros((num_units, len(inventory)), dtype=np.int64)
    np.add.at(counts, (train_units, train_phones), 1)
    majority = int(np.bincount(train_phones, minlength=len(inventory)).argmax())
    mapping = np.where(counts.sum(axis=1) > 0, counts.argmax(axis=1), majority)
    return {
        "accuracy": float((mapping[test_units] == test_phones).mean()),
        "chance": float((test_phones == majority).mean()),
        "train_frames": int(len(train_phones)),
        "test_frames": int(len(test_phones)),
        "train_utterances": len(train),
        "test_utterances": len(test),
    }


def _labelled_frames(ids, phones_by_utt, units_by_utt, index) -> tuple[np.ndarray, np.ndarray]:
    """(phone indices, units) of the labelled frames of ``ids``, concatenated."""
    phones, units = [], []
    for uid in ids:
        labels, codes = phones_by_utt[uid], np.asarray(units_by_utt[uid], dtype=np.int64)
        if len(labels) != len(codes):
            raise ValueError(f"{uid}: {len(labels)} phone labels for {len(codes)} unit frames")
        keep = [i for i, p in enumerate(labels) if p is not None]
        phones.append(np.array([index[labels[i]] for i in keep], dtype=np.int64))
        units.append(codes[keep])
    return np.concatenate(phones), np.concatenate(units)


# --- baselines ------------------------------------------------------------------------------------


def random_units(num_frames_by_utt: Mapping[str, int], num_units: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Uniform iid codes in [0, num_units), (T,) int64 per utterance. Each utterance draws from
    its own stream keyed by (seed, crc32 of its id), so its codes do not depend on the others."""
    return {
        uid: np.random.default_rng([seed, zlib.crc32(uid.encode("utf-8"))]).integers(
            0, num_units, size=n, dtype=np.int64
        )
        for uid, n in num_frames_by_utt.items()
    }


def mfcc_features(audio: np.ndarray, sample_rate: int, hop: int) -> np.ndarray:
    """13 MFCCs + deltas + delta-deltas, (ceil(T / hop), 39) float32, frames on the unit grid.

    Frame i is centred on the middle of samples [i * hop, (i + 1) * hop), like unit frame i:
    librosa's ``center=False`` frame i spans [i * hop, i * hop + n_fft) of its input, centred at
    i * hop + n_fft / 2, so the audio is zero-padded by (n_fft - hop) / 2 on the left (and enough
    on the right for ceil(T / hop) frames). With an odd n_fft - hop the centre is half a sample
    early. Deltas are computed within the utterance (none for utterances under 3 frames).
    """
    import librosa  # slow to import: only when the baseline runs

    audio = np.asarray(audio, dtype=np.float32)
    frames = math.ceil(len(audio) / hop)
    if frames == 0:
        return np.zeros((0, 3 * NUM_MFCC), dtype=np.float32)
    win = max(round(WINDOW_SECONDS * sample_rate), hop)
    n_fft = 1 << (win - 1).bit_length()  # the next power of two
    left = (n_fft - hop) // 2
    right = n_fft + (frames - 1) * hop - left - len(audio)
    padded = np.pad(audio, (left, right))
    mfcc = librosa.feature.mfcc(
        y=padded,
        sr=sample_rate,
        n_mfcc=NUM_MFCC,
        n_fft=n_fft,
        hop_length=hop,
        win_length=win,
        center=False,
        n_mels=NUM_MELS,
    )
    width = min(DELTA_WIDTH, frames if frames % 2 else frames - 1)
    if width >= MIN_DELTA_WIDTH:
        deltas = [librosa.feature.delta(mfcc, width=width, order=o) for o in (1, 2)]
    else:
        deltas = [np.zeros_like(mfcc)] * 2
    return np.concatenate([mfcc, *deltas], axis=0).T.astype(np.float32)


def mfcc_kmeans_units(
    audio_by_utt: Mapping[str, np.ndarray],
    sample_rate: int,
    hop: int,
    num_units: int,
    seed: int = 0,
    iters: int = KMEANS_ITERS,
    max_fit_frames: int = MAX_FIT_FRAMES,
) -> dict[str, np.ndarray]:
    """The MFCC k-means baseline: codes (ceil(T / hop),) int64 per utterance.

    :func:`mfcc_features` of every utterance, each dimension standardised over all frames,
    k-means (k-means++ seeds, ``iters`` Lloyd iterations; :mod:`audio_vq.models.kmeans`) fitted on
    a seeded sample of at most ``max_fit_frames`` frames, then every frame assigned to its
    nearest centroid. Deterministic for a seed; the global torch RNG is left untouched.
    """
    import torch

    from audio_vq.models.kmeans import kmeans, nearest

    features = {uid: mfcc_features(a, sample_rate, hop) for uid, a in audio_by_utt.items()}
    stacked = np.concatenate(list(features.values()), axis=0).astype(np.float64)
    if not len(stacked):
        return {uid: np.zeros(0, dtype=np.int64) for uid in features}
    mean, std = stacked.mean(axis=0), np.maximum(stacked.std(axis=0), STD_FLOOR)
    rng = np.random.default_rng(seed)
    fit = (
        stacked
        if len(stacked) <= max_fit_frames
        else stacked[np.sort(rng.choice(len(stacked), max_fit_frames, replace=False))]
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        centroids, _ = kmeans(torch.from_numpy(((fit - mean) / std).astype(np.float32)), num_units, iters)
    return {
        uid: nearest(torch.from_numpy(((f - mean) / std).astype(np.float32)), centroids).numpy()
        for uid, f in features.items()
    }


# --- what random codes score ----------------------------------------------------------------------


def random_code_expectation(phone_counts: Sequence[int] | np.ndarray, num_units: int) -> dict[str, float]:
    """Expected metrics of iid uniform codes over ``num_units`` = K, given the frame count n_y of
    each phone (N = sum n_y). Under such codes phone y's frames spread over the units as a
    multinomial (n_y, 1/K), independently across phones; every cell count c_yz is Binomial(n_y, 1/K).

    - ``phone_purity`` (exact): E[sum_z max_y c_yz] / N = K E[max_y X_y] / N, X_y ~ Bin(n_y, 1/K)
      independent (one unit's cells of different phones are independent), with
      E[max] = sum_{m >= 1} (1 - prod_y P(X_y < m)).
    - ``cluster_purity`` (approximate): sum_y E[max_z c_yz] / N. One phone's K cells are a
      multinomial, equicorrelated with rho = -1 / (K - 1); for Gaussian cells the maximum's excess
      over the mean n_y / K is then sqrt(1 - rho) = sqrt(K / (K - 1)) times that of independent
      cells. So: the maximum of K independent Bin(n_y, 1/K), its excess scaled by that factor
      (exact for K = 2 in the Gaussian limit; within ~2% of simulation in the tests).
    - ``pnmi`` (exact for the plug-in estimate): I = H^(z) - sum_y (n_y / N) H^(z | y), each plug-in
      entropy of n draws of a uniform K-way variable having E[H^] = ln n - (K / n) E[c ln c],
      c ~ Bin(n, 1/K); divided by H(y), which the phone counts fix.
    - ``pnmi_first_order``: Miller-Madow's bias E[H^] ~ ln K - (K - 1) / (2n) in the same sum
      gives E[I] ~ (P - 1)(K - 1) / (2 N) nats = (P - 1)(K - 1) / (2 N ln 2) bits, so
      PNMI ~ (P - 1)(K - 1) / (2 N ln 2 H(y) in bits). Good when every n_y >> K; it overshoots
      when phones have fewer frames than there are units (their plug-in entropy saturates at ln n_y).
    """
    n = np.asarray([c for c in phone_counts if c > 0], dtype=np.int64)
    if num_units < 1 or not len(n):
        raise ValueError("the expectation needs K >= 1 and at least one phone with frames")
    total, k = int(n.sum()), int(num_units)
    q = 1.0 / k
    pmfs = [_binomial_pmf(int(c), q) for c in n]

    # phone purity: E[max_y X_y] from the CDFs on the grid where the maximum can fall
    low = max(lo for lo, _ in pmfs)
    high = max(lo + len(pmf) - 1 for lo, pmf in pmfs)
    grid = np.arange(low, high + 1)
    prod = np.ones(len(grid))
    for lo, pmf in pmfs:
        prod *= _cdf_on(grid, lo, pmf)  # P(X_y <= m) for m in grid
    # E[max] = sum_{m>=1} P(max >= m) = low + sum_{m > low} (1 - P(max <= m - 1))
    expected_max = low + float((1.0 - prod[:-1]).sum())
    phone_purity = k * expected_max / total

    # cluster purity: E[max of K independent copies of Bin(n_y, 1/K)] per phone, its excess over
    # the mean widened for the multinomial's negative correlation
    cluster = 0.0
    widen = math.sqrt(k / (k - 1)) if k > 1 else 1.0
    for (lo, pmf), count in zip(pmfs, n):
        cdf = _cdf_on(np.arange(lo, lo + len(pmf)), lo, pmf)
        independent_max = lo + float((1.0 - cdf[:-1] ** k).sum())
        cluster += min(float(count), count * q + widen * (independent_max - count * q))
    cluster_purity = cluster / total

    p = n / total
    h_phone = float(-(p * np.log(p)).sum())  # nats
    mi = _expected_plugin_entropy(total, k) - sum(
        float(py) * _expected_plugin_entropy(int(c), k) for py, c in zip(p, n)
    )
    first_order = (len(n) - 1) * (k - 1) / (2 * total)
    nan = float("nan")
    return {
        "phone_purity": phone_purity,
        "cluster_purity": float(cluster_purity),
        "pnmi": mi / h_phone if h_phone > 0 else nan,
        "pnmi_first_order": first_order / h_phone if h_phone > 0 else nan,
    }


def _binomial_pmf(n: int, q: float) -> tuple[int, np.ndarray]:
    """(lo, pmf) with pmf[i] = P(Bin(n, q) = lo + i) over the range holding all but a negligible
    tail (mean +- TAIL_SDS sd + TAIL_MARGIN), from log-gamma so large n stays finite."""
    if q >= 1.0:
        return n, np.ones(1)
    mean, sd = n * q, math.sqrt(n * q * (1 - q))
    lo = max(0, math.floor(mean - TAIL_SDS * sd - TAIL_MARGIN))
    hi = min(n, math.ceil(mean + TAIL_SDS * sd + TAIL_MARGIN))
    c = np.arange(lo, hi + 1)
    lgamma = np.vectorize(math.lgamma, otypes=[np.float64])
    log_pmf = math.lgamma(n + 1) - lgamma(c + 1) - lgamma(n - c + 1) + c * math.log(q) + (n - c) * math.log1p(-q)
    return lo, np.exp(log_pmf)


def _cdf_on(grid: np.ndarray, lo: int, pmf: np.ndarray) -> np.ndarray:
    """P(X <= m) for each m in ``grid`` (ascending), X with pmf over [lo, lo + len(pmf))."""
    cdf = np.minimum(np.cumsum(pmf), 1.0)
    index = grid - lo
    return np.where(index < 0, 0.0, cdf[np.clip(index, 0, len(cdf) - 1)])


def _expected_plugin_entropy(n: int, k: int) -> float:
    """E[plug-in entropy] (nats) of n iid draws of a uniform k-way variable:
    ln n - (k / n) E[c ln c], c ~ Bin(n, 1/k) being one category's count."""
    lo, pmf = _binomial_pmf(n, 1.0 / k)
    c = np.arange(lo, lo + len(pmf), dtype=np.float64)
    c_log_c = np.where(c > 0, c * np.log(np.maximum(c, 1.0)), 0.0)
    return math.log(n) - k / n * float((pmf * c_log_c).sum())
