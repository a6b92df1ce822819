"""The embedded toy-speech corpus: deterministic formant-synthesised speech with phone alignments.

No real corpus can be downloaded here, so the demo and the tests train on this one. Speech is made
by a Klatt-style source-filter synthesiser (:mod:`._formant`): a Rosenberg glottal source with a
pitch contour, jitter, shimmer and aspiration through time-varying formant resonators, noise for
fricatives, closure + burst for stops. Formant targets are interpolated across phone boundaries
(coarticulation), and speakers differ in pitch, vocal-tract length and voice quality, so a
VQ-VAE can find phone-like units and a decoder can be conditioned on the speaker.

Layout written by :func:`generate`::

    root/.synthetic.json          the parameters, written first: claims the folder for resuming
    root/spk00/spk00_0000.wav     16-bit PCM
    root/spk00/spk00_0000.lab     one "start end phone" line per phone, seconds (HTK/Festival)
    root/spk00/spk00_0000.f0      the true F0: one "time_s f0_hz" line per F0_HOP_SECONDS frame,
                                  0 when unvoiced (:func:`audio_vq.pitch.format_f0`; what counts
                                  as voiced: :func:`._formant.true_f0`)
    root/corpus.json              written last: a folder without it is an unfinished generation

Every utterance draws its randomness from its own seed sequence keyed by (seed, speaker,
utterance), so files are byte-identical whatever the order, the worker count or interruptions.
"""

from __future__ import annotations

import json
import logging
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Iterator

import numpy as np

from ..atomic import atomic_write_text
from ..audio import save
from ..manifest import Utterance
from ..pitch import F0_FILE_SUFFIX, format_f0
from ..processes import die_with_parent
from ._formant import Phone, Speaker, render, true_f0
from .common import CorpusError

log = logging.getLogger(__name__)

CORPUS = "synthetic"
GENERATOR_VERSION = 2  # bump whenever the files for the same parameters change (2: the .f0 files)
CORPUS_FILE = "corpus.json"
CLAIM_FILE = ".synthetic.json"
MIN_UTTERANCE_SECONDS = 1.0  # room for edge silences and one syllable
MIN_SAMPLE_RATE = 8000
F0_HOP_SECONDS = 0.01  # the .f0 files' frame: 10 ms, the pitch trackers' customary step

# --- the phone inventory ----------------------------------------------------------------------
# Formant targets (F1, F2, F3, Hz) for a vocal-tract scale of 1: Peterson & Barney's (1952) men's
# averages for vowels; for consonants the locus of their place of articulation, the value that
# the formant transitions of neighbouring vowels point to.
LABIAL = (300.0, 900.0, 2100.0)
LABIODENTAL = (300.0, 1100.0, 2300.0)
ALVEOLAR = (300.0, 1700.0, 2600.0)
POSTALVEOLAR = (300.0, 1900.0, 2400.0)
VELAR = (300.0, 2000.0, 2300.0)
NASAL_F1 = 250.0  # nasal murmur: a low, broad first resonance
ORAL_BANDWIDTHS = (70.0, 100.0, 160.0)
CONSTRICTED_BANDWIDTHS = (100.0, 150.0, 220.0)
NASAL_BANDWIDTHS = (120.0, 300.0, 400.0)  # broad: the nasal cavity damps the oral formants
# Noise spectra, ((centre Hz, bandwidth Hz, gain dB), ...): sibilants peak high, /f/ is flat and
# weak; bursts are low and diffuse (labial), high (alveolar) or compact mid-frequency (velar).
S_NOISE = ((4800.0, 1600.0, 0.0), (6800.0, 1500.0, -4.0))
SH_NOISE = ((2600.0, 800.0, 0.0), (4200.0, 1800.0, -5.0))
F_NOISE = ((1800.0, 3000.0, 0.0), (5200.0, 4000.0, 0.0))
LABIAL_BURST = ((700.0, 1200.0, 0.0), (2400.0, 3000.0, -10.0))
ALVEOLAR_BURST = ((3900.0, 1800.0, 0.0), (5800.0, 2000.0, -3.0))
VELAR_BURST = ((1900.0, 700.0, 0.0), (3300.0, 1500.0, -8.0))
# Durations, seconds (min, max) at speaking rate 1; a stop's includes closure, burst and VOT.
VOWEL_DURATION, NASAL_DURATION, FRICATIVE_DURATION = (0.07, 0.16), (0.05, 0.09), (0.07, 0.12)
H_DURATION, VOICED_STOP_DURATION, VOICELESS_STOP_DURATION = (0.05, 0.09), (0.07, 0.1), (0.09, 0.13)
PAUSE_DURATION = (0.08, 0.25)  # "sil" between words (edge silences: EDGE_SILENCE)
VOICE_BAR = 0.08  # voicing during a voiced stop's closure, relative to a vowel's
VOICED_FRICATIVE_VOICING, NASAL_VOICING = 0.35, 0.5
VOICED_FRICATION_DB = -6.0  # voicing takes airflow from the frication
ASPIRATION = 0.35  # /h/ and voiceless stops' VOT, relative to the voice source
VOICELESS_VOT, VOICED_VOT = 0.045, 0.012  # seconds from release to voicing
CLASSES = ("vowel", "nasal", "fricative", "stop", "silence")


def _vowel(f1: float, f2: float, f3: float) -> Phone:
    return Phone("vowel", (f1, f2, f3), ORAL_BANDWIDTHS, VOWEL_DURATION, voicing=1.0)


def _nasal(locus, zero: float) -> Phone:
    return Phone(
        "nasal",
        (NASAL_F1, locus[1], locus[2]),
        NASAL_BANDWIDTHS,
        NASAL_DURATION,
        voicing=NASAL_VOICING,
        nasal_zero=zero,
    )


def _fricative(locus, noise, noise_db: float, voiced: bool) -> Phone:
    return Phone(
        "fricative",
        locus,
        CONSTRICTED_BANDWIDTHS,
        FRICATIVE_DURATION,
        voicing=VOICED_FRICATIVE_VOICING if voiced else 0.0,
        noise=noise,
        noise_db=noise_db + (VOICED_FRICATION_DB if voiced else 0.0),
    )


def _stop(locus, burst, burst_db: float, voiced: bool) -> Phone:
    if voiced:
        return Phone(
            "stop",
            locus,
            CONSTRICTED_BANDWIDTHS,
            VOICED_STOP_DURATION,
            voicing=VOICE_BAR,
            noise=burst,
            noise_db=burst_db,
            vot=VOICED_VOT,
        )
    return Phone(
        "stop",
        locus,
        CONSTRICTED_BANDWIDTHS,
        VOICELESS_STOP_DURATION,
        aspiration=ASPIRATION,
        noise=burst,
        noise_db=burst_db,
        vot=VOICELESS_VOT,
    )


# name -> Phone (class, formant targets, excitation); noise levels in dB relative to the vowels
PHONES: dict[str, Phone] = {
    "sil": Phone("silence", None, ORAL_BANDWIDTHS, PAUSE_DURATION),
    "iy": _vowel(270, 2290, 3010),
    "ih": _vowel(390, 1990, 2550),
    "eh": _vowel(530, 1840, 2480),
    "ae": _vowel(660, 1720, 2410),
    "aa": _vowel(730, 1090, 2440),
    "ao": _vowel(570, 840, 2410),
    "uw": _vowel(300, 870, 2240),
    "er": _vowel(490, 1350, 1690),
    "m": _nasal(LABIAL, 1000.0),
    "n": _nasal(ALVEOLAR, 1600.0),
    "ng": _nasal(VELAR, 3000.0),
    "f": _fricative(LABIODENTAL, F_NOISE, -20.0, False),
    "v": _fricative(LABIODENTAL, F_NOISE, -20.0, True),
    "s": _fricative(ALVEOLAR, S_NOISE, -10.0, False),
    "z": _fricative(ALVEOLAR, S_NOISE, -10.0, True),
    "sh": _fricative(POSTALVEOLAR, SH_NOISE, -8.0, False),
    "zh": _fricative(POSTALVEOLAR, SH_NOISE, -8.0, True),
    "h": Phone("fricative", None, ORAL_BANDWIDTHS, H_DURATION, aspiration=ASPIRATION),
    "p": _stop(LABIAL, LABIAL_BURST, -12.0, False),
    "b": _stop(LABIAL, LABIAL_BURST, -16.0, True),
    "t": _stop(ALVEOLAR, ALVEOLAR_BURST, -6.0, False),
    "d": _stop(ALVEOLAR, ALVEOLAR_BURST, -10.0, True),
    "k": _stop(VELAR, VELAR_BURST, -8.0, False),
    "g": _stop(VELAR, VELAR_BURST, -12.0, True),
}
SILENCE = "sil"


def phone_class(name: str) -> str:
    """``"vowel"``, ``"nasal"``, ``"fricative"``, ``"stop"`` or ``"silence"``; KeyError if unknown."""
    return PHONES[name].cls


VOWELS = tuple(p for p in PHONES if phone_class(p) == "vowel")
ONSETS = tuple(p for p in PHONES if phone_class(p) not in ("vowel", "silence") and p != "ng")
CODAS = tuple(p for p in PHONES if phone_class(p) not in ("vowel", "silence") and p != "h")

# --- speakers ---------------------------------------------------------------------------------
F0_RANGE = (88.0, 225.0)  # speakers' median F0 (Hz); with intonation F0 spans ~80-270 Hz
PITCH_RANGE_SEMITONES = (2.0, 5.0)
FORMANT_SCALE_RANGE = (0.85, 1.2)  # 1 / relative vocal-tract length
SIZE_FOLLOWS_PITCH = 0.5  # higher voices tend to have shorter vocal tracts, not always
FORMANT_IDIOSYNCRASY = 0.08  # per-speaker, per-formant deviation from the plain scaling
VOICE_QUALITY = {  # uniform ranges of the other Speaker fields
    "tilt": (0.1, 0.6),
    "breathiness": (0.02, 0.25),
    "open_quotient": (0.45, 0.7),
    "jitter": (0.003, 0.02),
    "shimmer": (0.02, 0.08),
    "rate": (0.85, 1.15),
}
STRATUM_JITTER = (0.2, 0.8)  # where in its slice of a range a speaker falls
PARAMETER_DECIMALS = 4  # speaker parameters are rounded, so corpus.json holds the exact values used

# Independent random streams; an utterance's are keyed by (seed, stream, speaker, utterance), so
# any utterance can be made alone, in any order, in any process.
_SPEAKER_STREAM, _DURATION_STREAM, _SCORE_STREAM, _SOUND_STREAM, _SENTENCE_STREAM = range(5)


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, *key]))


def make_speakers(num_speakers: int, seed: int) -> list[Speaker]:
    """``num_speakers`` voices named spk00, spk01, ... Median F0 and vocal-tract size are
    stratified (each speaker in its own slice of the range, slices shuffled), so that even a
    few speakers cover the ranges; voice quality is drawn uniformly from ``VOICE_QUALITY``."""
    rng = _rng(seed, _SPEAKER_STREAM)
    pitch_slot, size_slot = rng.permutation(num_speakers), rng.permutation(num_speakers)
    (f0_lo, f0_hi), (scale_lo, scale_hi) = F0_RANGE, FORMANT_SCALE_RANGE
    width = max(2, len(str(num_speakers - 1)))  # names sort in speaker order
    speakers = []
    for i in range(num_speakers):
        pitch = (pitch_slot[i] + rng.uniform(*STRATUM_JITTER)) / num_speakers  # in [0, 1)
        size = (
            SIZE_FOLLOWS_PITCH * pitch
            + (1 - SIZE_FOLLOWS_PITCH) * (size_slot[i] + rng.uniform(*STRATUM_JITTER)) / num_speakers
        )
        values = {
            "f0": f0_lo * (f0_hi / f0_lo) ** pitch,  # log-uniform: pitch is heard in ratios
            "pitch_range": rng.uniform(*PITCH_RANGE_SEMITONES),
            "formant_scale": scale_lo + (scale_hi - scale_lo) * size,
            **{k: rng.uniform(*r) for k, r in VOICE_QUALITY.items()},
        }
        shifts = 1 + rng.uniform(-1, 1, 5) * FORMANT_IDIOSYNCRASY
        shifts = tuple(round(float(x), PARAMETER_DECIMALS) for x in shifts)
        speakers.append(
            Speaker(
                name=f"spk{i:0{width}d}",
                formant_shifts=shifts,
                **{k: round(float(v), PARAMETER_DECIMALS) for k, v in values.items()},
            )
        )
    return speakers


# --- what is said: a simple syllable grammar --------------------------------------------------
EDGE_SILENCE = (0.1, 0.3)  # seconds of silence at the start and the end
PAUSE_PROBABILITY = 0.35  # of a pause between two words
SYLLABLES_PER_WORD, SYLLABLES_PER_WORD_P = (1, 2, 3), (0.45, 0.4, 0.15)
SHAPES, SHAPES_P = ("CV", "CVC", "V", "VC"), (0.45, 0.3, 0.1, 0.15)
WORD_ATTEMPTS = 4  # words tried once the utterance is nearly full (if none fitted: a lone vowel)


def _word(rng: np.random.Generator, after_vowel: bool, bare_vowel: bool) -> list[str]:
    """Phones of one word; a syllable with no onset after a vowel gets one (no vowel hiatus)."""
    if bare_vowel:
        shapes = ["V"]
    else:
        count = rng.choice(SYLLABLES_PER_WORD, p=SYLLABLES_PER_WORD_P)
        shapes = [SHAPES[rng.choice(len(SHAPES), p=SHAPES_P)] for _ in range(count)]
    phones: list[str] = []
    for shape in shapes:
        if shape[0] == "V" and (phones[-1] in VOWELS if phones else after_vowel):
            shape = "C" + shape
        for i, c in enumerate(shape):
            pool = VOWELS if c == "V" else ONSETS if i == 0 else CODAS
            phones.append(str(pool[rng.integers(len(pool))]))
    return phones


def _score(rng: np.random.Generator, speaker: Speaker, num_samples: int, sr: int) -> list[tuple[str, int]]:
    """The phones of one utterance with their lengths in samples, summing to ``num_samples``."""

    def seconds(p: str) -> float:
        return float(rng.uniform(*PHONES[p].duration)) * speaker.rate

    start, end = (float(rng.uniform(*EDGE_SILENCE)) for _ in range(2))
    timed, budget, used, failures = [(SILENCE, start)], num_samples / sr - end, start, 0
    while failures < WORD_ATTEMPTS:
        last_try = failures == WORD_ATTEMPTS - 1 and len(timed) == 1  # no word yet: a vowel fits
        word = _word(rng, timed[-1][0] in VOWELS, bare_vowel=last_try)
        pause = len(timed) > 1 and rng.random() < PAUSE_PROBABILITY
        pause = [(SILENCE, seconds(SILENCE))] if pause else []
        candidate = pause + [(p, seconds(p)) for p in word]
        length = sum(d for _, d in candidate)
        if used + length > budget:
            failures += 1
            continue
        timed += candidate
        used += length
    bounds = np.round(np.cumsum([d for _, d in timed]) * sr).astype(int).tolist()
    lengths = np.diff([0, *bounds, num_samples]).tolist()  # the end silence takes the rest
    return list(zip([p for p, _ in timed] + [SILENCE], lengths))


def _mean_seconds(phone: str) -> float:
    return sum(PHONES[phone].duration) / 2


def _sentence(seed: int, k: int, min_seconds: float, max_seconds: float) -> list[tuple[bool, list[str]]]:
    """Shared sentence k: (pause before, phones) per word, sized so that it is read, at an
    average rate, in a length drawn from [min_seconds, max_seconds]. Every speaker reading it
    says the same phones with the same pauses: parallel data, with their own timing and voice."""
    rng = _rng(seed, _SENTENCE_STREAM, k)
    target = rng.uniform(min_seconds, max_seconds) - sum(EDGE_SILENCE)  # the edges' mean total
    words: list[tuple[bool, list[str]]] = []
    used = 0.0
    while True:
        word = _word(rng, bool(words) and words[-1][1][-1] in VOWELS, bare_vowel=False)
        pause = bool(words) and rng.random() < PAUSE_PROBABILITY
        length = sum(map(_mean_seconds, word)) + (_mean_seconds(SILENCE) if pause else 0.0)
        if words and used + length > target:
            return words
        words.append((pause, word))
        used += length


def _sentence_score(
    rng: np.random.Generator, speaker: Speaker, words: list[tuple[bool, list[str]]], sr: int
) -> list[tuple[str, int]]:
    """One speaker's reading of a sentence: phones with their lengths in samples."""

    def seconds(p: str) -> float:
        return float(rng.uniform(*PHONES[p].duration)) * speaker.rate

    start, end = (float(rng.uniform(*EDGE_SILENCE)) for _ in range(2))
    timed = [(SILENCE, start)]
    for pause, word in words:
        timed += ([(SILENCE, seconds(SILENCE))] if pause else []) + [(ph, seconds(ph)) for ph in word]
    timed.append((SILENCE, end))
    bounds = np.round(np.cumsum([d for _, d in timed]) * sr).astype(int).tolist()
    return list(zip([ph for ph, _ in timed], np.diff([0, *bounds]).tolist()))


# --- the corpus on disk -----------------------------------------------------------------------
def _option(key: str, value, integer: bool, low: float, strict: bool = False, low_name: str = ""):
    """``value`` as int or float if it is a finite number >= ``low`` (> if ``strict``), else a
    one-line CorpusError naming ``key``."""
    kinds = (int, np.integer) if integer else (int, float, np.integer, np.floating)
    if (
        isinstance(value, kinds)
        and not isinstance(value, bool)
        and np.isfinite(value)
        and (value > low if strict else value >= low)
    ):
        return int(value) if integer else float(value)
    bound = f"{'>' if strict else '>='} {low_name + ' ' if low_name else ''}{low:g}"
    kind = "an integer" if integer else "a number"
    raise CorpusError(f"{CORPUS}: {key} must be {kind} {bound}, got {value!r}")


def _parameters(num_speakers, minutes, seed, sample_rate, min_seconds, max_seconds, sentences=0) -> dict:
    """The options that decide the audio, validated and normalised: what corpus.json records."""
    params = {
        "num_speakers": _option("num_speakers", num_speakers, True, 1),
        "minutes": _option("minutes", minutes, False, 0, strict=True),
        "seed": _option("seed", seed, True, 0),
        "sample_rate": _option("sample_rate", sample_rate, True, MIN_SAMPLE_RATE),
        "min_seconds": _option("min_seconds", min_seconds, False, MIN_UTTERANCE_SECONDS),
    }
    params["max_seconds"] = _option("max_seconds", max_seconds, False, params["min_seconds"], low_name="min_seconds")
    if _option("sentences", sentences, True, 0):  # recorded only when used: older corpora stay valid
        params["sentences"] = int(sentences)
    return params


def _plan(params: dict) -> list[list[float]]:
    """Seconds of each utterance, per speaker: each speaker gets minutes / num_speakers of audio
    (an utterance is kept if at least half of it fits), and at least one utterance."""
    budget = params["minutes"] * 60.0 / params["num_speakers"]
    plan = []
    for s in range(params["num_speakers"]):
        durations: list[float] = []
        total = 0.0
        while True:
            d = float(
                _rng(params["seed"], _DURATION_STREAM, s, len(durations)).uniform(
                    params["min_seconds"], params["max_seconds"]
                )
            )
            if durations and total + d / 2 > budget:
                break
            durations.append(d)
            total += d
        plan.append(durations)
    return plan


def _scores(params: dict, speakers: list[Speaker]) -> Iterator[tuple[int, int, list[tuple[str, int]]]]:
    """(speaker index, utterance index, score) of every utterance. Free reading: lengths from
    :func:`_plan`, words drawn per utterance. With ``sentences``: utterance u of every speaker
    reads shared sentence u mod sentences, each speaker reading until its share of the minutes
    is used (an utterance is kept if at least half of it fits)."""
    seed, sr = params["seed"], params["sample_rate"]
    if not params.get("sentences"):
        for s, (speaker, durations) in enumerate(zip(speakers, _plan(params))):
            for u, seconds in enumerate(durations):
                yield s, u, _score(_rng(seed, _SCORE_STREAM, s, u), speaker, round(seconds * sr), sr)
        return
    budget = params["minutes"] * 60.0 / params["num_speakers"]
    texts = [_sentence(seed, k, params["min_seconds"], params["max_seconds"]) for k in range(params["sentences"])]
    for s, speaker in enumerate(speakers):
        total, u = 0.0, 0
        while True:
            score = _sentence_score(_rng(seed, _SCORE_STREAM, s, u), speaker, texts[u % len(texts)], sr)
            seconds = sum(n for _, n in score) / sr
            if u and total + seconds / 2 > budget:
                break
            yield s, u, score
            total, u = total + seconds, u + 1


def _lab_text(score: list[tuple[str, int]], sr: int) -> str:
    """HTK/Festival-style ``start end phone`` lines, seconds; contiguous from 0 to the end."""
    bounds = np.cumsum([0] + [n for _, n in score])
    rows = zip((p for p, _ in score), bounds[:-1], bounds[1:])
    return "".join(f"{a / sr:.7f} {b / sr:.7f} {p}\n" for p, a, b in rows)


def _synthesize(task: tuple) -> None:
    """Render one utterance and write its lab, f0 and wav (each atomically, the wav last). Runs
    in workers."""
    wav, score, speaker, seed, s, u, sr = task
    rendering = render([(PHONES[p], n) for p, n in score], speaker, _rng(seed, _SOUND_STREAM, s, u), sr)
    hop = round(F0_HOP_SECONDS * sr)
    atomic_write_text(wav.with_suffix(".lab"), _lab_text(score, sr))
    atomic_write_text(wav.with_suffix(F0_FILE_SUFFIX), format_f0(true_f0(rendering, hop), hop, sr))
    save(wav, rendering.audio, sr, subtype="PCM_16")


def _check_same(path: Path, root: Path, params: dict) -> bool:
    """CorpusError unless ``path`` (corpus.json or the claim) records these parameters; True when
    it does but from an older GENERATOR_VERSION (its files are to be rendered again)."""
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
        old = {"generator": stored["generator"], "version": stored["version"], **stored["parameters"]}
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CorpusError(
            f"{root}: {path.name} is not a {CORPUS} corpus record ({type(e).__name__}); use an empty folder"
        ) from None
    outdated = isinstance(old["version"], int) and old["version"] < GENERATOR_VERSION
    for key, value in {"generator": CORPUS, "version": GENERATOR_VERSION, **params}.items():
        if old.get(key) != value and not (key == "version" and outdated):
            raise CorpusError(
                f"{root}: holds a {CORPUS} corpus made with {key}={old.get(key)!r}, "
                f"not {key}={value!r}; pass the same options, or use another "
                f"(or an emptied) root"
            )
    return outdated


def _claim(root: Path, params: dict, wavs: list[Path]) -> None:
    """Check that ``root`` is empty or an unfinished corpus with these options; if it is empty,
    record the options in it first, so that an interrupted generation can be resumed but never
    confused with someone's files. An older generator's corpus with these options loses its
    utterance files (``wavs`` and their companions) before its claim is renewed, so none is kept
    by the resume; until then, an interruption leaves it outdated, and it is cleared again."""
    if (root / CLAIM_FILE).exists():
        if not _check_same(root / CLAIM_FILE, root, params):
            return
        log.warning("%s: made by an older %s generator; rendering it again", root, CORPUS)
        for wav in wavs:
            for suffix in (".wav", ".lab", F0_FILE_SUFFIX):
                wav.with_suffix(suffix).unlink(missing_ok=True)
    elif root.exists() and any(not p.name.startswith(".") for p in root.iterdir()):
        raise CorpusError(f"{root}: not empty and holds no {CORPUS} corpus; choose an empty or new folder")
    record = {"generator": CORPUS, "version": GENERATOR_VERSION, "parameters": params}
    atomic_write_text(root / CLAIM_FILE, json.dumps(record, indent=1) + "\n")


def generate(
    root: str | os.PathLike,
    num_speakers: int = 8,
    minutes: float = 10.0,
    seed: int = 0,
    sample_rate: int = 16000,
    min_seconds: float = 1.5,
    max_seconds: float = 4.0,
    num_workers: int = 1,
    sentences: int = 0,
) -> Path:
    """Generate the corpus into ``root`` (see the module docstring) and return it, absolute.

    Does nothing if ``root`` holds a finished corpus with these options; resumes an unfinished
    one (utterances whose wav, lab and f0 exist are kept: they are deterministic); renders one
    made by an older GENERATOR_VERSION with these options again; raises CorpusError
    if ``root`` holds a corpus made with other options, or other files. ``num_workers`` > 1
    renders in a process pool; the files are the same either way. ``sentences`` > 0 makes every
    speaker read the same ``sentences`` shared sentences in turn (parallel data; see :func:`_scores`).
    """
    params = _parameters(num_speakers, minutes, seed, sample_rate, min_seconds, max_seconds, sentences)
    num_workers = _option("num_workers", num_workers, True, 1)
    root = Path(root).expanduser().resolve()
    if root.exists() and not root.is_dir():
        raise CorpusError(f"{root}: {CORPUS} root is not a folder")
    if (root / CORPUS_FILE).exists() and not _check_same(root / CORPUS_FILE, root, params):
        return root

    sr, seed = params["sample_rate"], params["seed"]
    speakers = make_speakers(params["num_speakers"], seed)
    scores = [
        (root / speakers[s].name / f"{speakers[s].name}_{u:04d}.wav", s, u, score)
        for s, u, score in _scores(params, speakers)
    ]
    _claim(root, params, [wav for wav, *_ in scores])
    (root / CORPUS_FILE).unlink(missing_ok=True)  # an outdated corpus is unfinished from here on
    tasks, utterances = [], []
    for wav, s, u, score in scores:
        speaker = speakers[s]
        companions = [wav.with_suffix(suffix) for suffix in (".lab", F0_FILE_SUFFIX)]
        if not all(path.exists() for path in (wav, *companions)):
            tasks.append((wav, score, speaker, seed, s, u, sr))
        utterances.append(
            {
                "id": wav.stem,
                "speaker": speaker.name,
                "num_samples": sum(n for _, n in score),
                "path": wav.relative_to(root).as_posix(),
                "alignment": companions[0].relative_to(root).as_posix(),
                "f0": companions[1].relative_to(root).as_posix(),
                "text": " ".join(p for p, _ in score),
            }
        )
    log.info("%s: rendering %d of %d utterances", root, len(tasks), len(utterances))
    if num_workers > 1 and len(tasks) > 1:
        with ProcessPoolExecutor(max_workers=min(num_workers, len(tasks)), initializer=die_with_parent) as pool:
            for _ in pool.map(_synthesize, tasks):
                pass  # consume, so that a worker's exception is raised here
    else:
        for task in tasks:
            _synthesize(task)

    record = {
        "generator": CORPUS,
        "version": GENERATOR_VERSION,
        "parameters": params,
        "phones": {name: {"class": p.cls, "formants": p.formants, "voicing": p.voicing} for name, p in PHONES.items()},
        "speakers": {sp.name: {k: v for k, v in asdict(sp).items() if k != "name"} for sp in speakers},
        "total_seconds": round(sum(u["num_samples"] for u in utterances) / sr, 3),
        "utterances": utterances,
    }
    atomic_write_text(root / CORPUS_FILE, json.dumps(record, indent=1) + "\n")  # last: marks it finished
    return root


def scan(
    root: str | os.PathLike,
    num_speakers: int = 8,
    minutes: float = 10.0,
    seed: int = 0,
    sample_rate: int = 16000,
    min_seconds: float = 1.5,
    max_seconds: float = 4.0,
    num_workers: int = 1,
    sentences: int = 0,
) -> Iterator[Utterance]:
    """Utterances of the corpus at ``root`` (generated first if needed, see :func:`generate`),
    sorted by id; ``text`` is the phone sequence, ``alignment`` the absolute .lab path."""
    root = generate(root, num_speakers, minutes, seed, sample_rate, min_seconds, max_seconds, num_workers, sentences)
    record = json.loads((root / CORPUS_FILE).read_text(encoding="utf-8"))
    return iter(
        [
            Utterance(
                id=u["id"],
                path=str(root / u["path"]),
                speaker=u["speaker"],
                text=u["text"],
                alignment=str(root / u["alignment"]),
            )
            for u in sorted(record["utterances"], key=lambda u: u["id"])
        ]
    )
