"""All audio I/O goes through here: load, save, resample, mu-law, loudness.

Audio inside the toolkit is float32, mono, shape (T,), nominally in [-1, 1], at
``SAMPLE_RATE`` unless a caller asks for another rate. Anything that cannot be turned into
that raises :class:`AudioError`, whose message names the file and the reason; nothing here
hands back garbage silently.

torch is never imported at module level: the prepare stage's worker processes load audio
without paying for it. The mu-law functions accept numpy arrays and torch tensors alike.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from .atomic import atomic_path

SAMPLE_RATE = 16_000
MU_LAW_CHANNELS = 256
RESAMPLE_QUALITY = "HQ"  # soxr's high quality: the default of librosa's soxr_hq
LOUDNESS_BLOCK_SECONDS = 0.4  # BS.1770 gating block; pyloudnorm refuses shorter input
DEFAULT_LOUDNESS_LUFS = -23.0  # EBU R128 target
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".opus", ".aiff", ".aif", ".au", ".sph", ".nist", ".w64", ".rf64")


class AudioError(Exception):
    """Audio that cannot be used. ``str(err)`` is one line: ``<path>: <reason>``."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


@dataclass(frozen=True)
class AudioInfo:
    """What the file header says, without decoding: frames per channel, rate, channels."""

    num_samples: int
    sample_rate: int
    channels: int
    format: str
    subtype: str

    @property
    def duration(self) -> float:
        return self.num_samples / self.sample_rate


def info(path: str | os.PathLike) -> AudioInfo:
    """Read the header of ``path``; raises AudioError if missing or unreadable."""
    path = Path(path)
    _check_exists(path)
    try:
        i = sf.info(str(path))
    except Exception as e:  # libsndfile's errors come as several types
        raise AudioError(path, f"unreadable ({_one_line(e)})") from None
    return AudioInfo(int(i.frames), int(i.samplerate), int(i.channels), i.format, i.subtype)


def load(path: str | os.PathLike, sample_rate: int | None = SAMPLE_RATE, mono: bool = True) -> np.ndarray:
    """Decode ``path`` to float32.

    Returns (T,) when ``mono`` (channels averaged), else (C, T); resampled with soxr to
    ``sample_rate`` unless it is None (then the file's own rate is kept; see :func:`load_with_rate`).
    Raises AudioError when the file is missing, unreadable, truncated, empty or non-finite.
    """
    return load_with_rate(path, sample_rate, mono)[0]


def load_with_rate(
    path: str | os.PathLike, sample_rate: int | None = SAMPLE_RATE, mono: bool = True
) -> tuple[np.ndarray, int]:
    """Like :func:`load`, also returning the rate of what it returns."""
    data, native_rate = _decode(Path(path))
    audio = data.T  # (C, T)
    if mono:
        audio = audio.mean(axis=0)
    rate = native_rate
    if sample_rate is not None and sample_rate != native_rate:
        audio = resample(audio, native_rate, sample_rate)
        rate = sample_rate
    return np.ascontiguousarray(audio, dtype=np.float32), rate


def load_segment(path: str | os.PathLike, start: int, frames: int = -1, channel: int | None = None) -> np.ndarray:
    """Mono float32 samples [start, start + frames) of ``path`` at its own rate, (T,), decoding
    only that part (fewer than ``frames`` at the end of the file; -1: to the end). ``channel``:
    that channel alone (None: the channels averaged). Same checks as :func:`load`."""
    if start < 0 or frames == 0 or frames < -1:
        raise ValueError(f"segment start must be >= 0 and frames >= 1 (or -1), got start={start}, frames={frames}")
    data, _ = _decode(Path(path), start, frames)
    if channel is not None and not 0 <= channel < data.shape[1]:
        raise AudioError(Path(path), f"no channel {channel} (the file has {data.shape[1]})")
    mono = data.mean(axis=1) if channel is None else data[:, channel]
    return np.ascontiguousarray(mono, dtype=np.float32)


def _decode(path: Path, start: int = 0, frames: int = -1) -> tuple[np.ndarray, int]:
    """Decode (all of, or ``frames`` from ``start``) ``path`` to float32 (T, C) and its rate,
    refusing anything unusable with an AudioError."""
    _check_exists(path)
    try:
        with sf.SoundFile(str(path)) as f:
            total, rate, header_log = f.frames, f.samplerate, f.extra_info
            known = 0 < total < _UNKNOWN_LENGTH
            if start and known and start >= total:
                raise AudioError(path, f"segment starts at sample {start}, past the end ({total} samples)")
            if start:
                f.seek(start)
            data = f.read(frames, dtype="float32", always_2d=True)  # (T, C)
    except AudioError:
        raise
    except Exception as e:  # libsndfile's errors come as several types
        raise AudioError(path, f"unreadable or corrupt ({_one_line(e)})") from None
    if len(data) == 0:
        raise AudioError(path, "no samples")
    # libsndfile reports the header's frame count; a cut-off file decodes fewer.
    expected = total - start if frames < 0 else min(frames, total - start)
    if known and len(data) < expected:
        raise AudioError(path, f"truncated: decoded {len(data)} of {expected} samples from sample {start}")
    cut = _cut_data_chunk(header_log)
    if cut:
        raise AudioError(path, f"truncated: data chunk holds {cut[1]} of the {cut[0]} bytes its header declares")
    finite = np.isfinite(data).all(axis=1)
    if not finite.all():
        raise AudioError(path, f"non-finite samples (NaN or Inf), first at sample {start + int(np.argmin(finite))}")
    return data, rate


def resample(audio: np.ndarray, orig_rate: int, target_rate: int) -> np.ndarray:
    """Resample (T,) or (C, T) float audio with soxr; returns float32."""
    if orig_rate <= 0 or target_rate <= 0:
        raise ValueError(f"sample rates must be positive, got {orig_rate} -> {target_rate}")
    audio = np.asarray(audio, dtype=np.float32)
    if orig_rate == target_rate:
        return audio
    if audio.ndim == 1:
        return soxr.resample(audio, orig_rate, target_rate, quality=RESAMPLE_QUALITY).astype(np.float32)
    out = soxr.resample(audio.T, orig_rate, target_rate, quality=RESAMPLE_QUALITY)  # soxr wants (T, C)
    return np.ascontiguousarray(out.T, dtype=np.float32)


def save(
    path: str | os.PathLike, audio: np.ndarray, sample_rate: int = SAMPLE_RATE, subtype: str | None = None
) -> Path:
    """Write (T,) or (C, T) audio atomically (temporary name in the same folder, then rename).

    The format follows the extension; ``subtype`` defaults to libsndfile's (PCM_16 for wav and
    flac). Refuses non-finite audio rather than writing it.
    """
    path = Path(path)
    audio = np.asarray(audio)
    if audio.dtype.kind == "f" and not np.isfinite(audio).all():
        raise AudioError(path, "refusing to write non-finite samples")
    if audio.size == 0:
        raise AudioError(path, "refusing to write zero samples")
    data = audio.T if audio.ndim == 2 else audio
    fmt = _format_for(path)
    try:
        with atomic_path(path) as tmp:
            sf.write(tmp, data, sample_rate, subtype=subtype, format=fmt)
    except (OSError, sf.SoundFileRuntimeError) as e:  # a full disk, a read-only folder, a size limit
        raise AudioError(
            path, f"cannot write it ({' '.join(str(e).split())}; {_free_bytes(path.parent)} free on its disk)"
        ) from None
    return path


def _free_bytes(folder: Path) -> str:
    try:
        return f"{shutil.disk_usage(folder).free / 1e6:.1f} MB"
    except OSError:
        return "unknown space"


def mulaw_encode(x, channels: int = MU_LAW_CHANNELS):
    """Audio in [-1, 1] -> integer classes in [0, channels - 1] (numpy array or torch tensor)."""
    mu = channels - 1
    if _is_torch(x):
        import torch

        x = x.clamp(-1.0, 1.0)
        y = torch.sign(x) * torch.log1p(mu * x.abs()) / np.log1p(mu)
        return ((y + 1) / 2 * mu + 0.5).floor().long()
    x = np.clip(np.asarray(x, dtype=np.float64), -1.0, 1.0)
    y = np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu)
    return np.floor((y + 1) / 2 * mu + 0.5).astype(np.int64)


def mulaw_decode(q, channels: int = MU_LAW_CHANNELS):
    """Integer classes in [0, channels - 1] -> audio in [-1, 1] (float32 / torch float)."""
    mu = channels - 1
    if _is_torch(q):
        import torch

        y = 2 * q.float() / mu - 1
        return torch.sign(y) * torch.expm1(y.abs() * np.log1p(mu)) / mu
    y = 2 * np.asarray(q, dtype=np.float64) / mu - 1
    return (np.sign(y) * np.expm1(np.abs(y) * np.log1p(mu)) / mu).astype(np.float32)


def loudness(audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> float:
    """Integrated loudness in LUFS (ITU-R BS.1770 via pyloudnorm) of (T,) or (C, T) audio.

    Clips shorter than one 400 ms gating block are measured tiled to one block, which keeps
    their mean-square level. Digital silence returns -inf.
    """
    import pyloudnorm

    audio = np.asarray(audio, dtype=np.float64)
    data = audio.T if audio.ndim == 2 else audio  # pyloudnorm wants (T,) or (T, C)
    block = int(np.ceil(LOUDNESS_BLOCK_SECONDS * sample_rate)) + 1
    if len(data) == 0:
        raise ValueError("loudness of zero samples is undefined")
    if len(data) < block:
        reps = int(np.ceil(block / len(data)))
        data = np.concatenate([data] * reps, axis=0)
    return float(pyloudnorm.Meter(sample_rate).integrated_loudness(data))


def normalize_loudness(
    audio: np.ndarray,
    sample_rate: int = SAMPLE_RATE,
    target_lufs: float = DEFAULT_LOUDNESS_LUFS,
    current: float | None = None,
) -> np.ndarray:
    """Scale audio to ``target_lufs``. Silence is returned unchanged. May exceed [-1, 1]:
    check with :func:`peak` before writing fixed-point files. ``current``: the audio's
    loudness when the caller has measured it already (the measurement is the costly part)."""
    current = loudness(audio, sample_rate) if current is None else current
    if not np.isfinite(current):
        return np.asarray(audio, dtype=np.float32)
    gain = 10.0 ** ((target_lufs - current) / 20.0)
    return (np.asarray(audio, dtype=np.float32) * gain).astype(np.float32)


def peak(audio: np.ndarray) -> float:
    """Largest absolute sample value."""
    audio = np.asarray(audio)
    return float(np.max(np.abs(audio))) if audio.size else 0.0


def _check_exists(path: Path) -> None:
    if not path.exists():
        raise AudioError(path, "missing (no such file)")
    if not path.is_file():
        raise AudioError(path, "not a regular file")
    if path.stat().st_size == 0:
        raise AudioError(path, "empty file (0 bytes)")


def _cut_data_chunk(header_log: str) -> tuple[int, int] | None:
    """(declared, present) bytes when libsndfile's header log says a RIFF/AIFF data chunk is
    cut short. libsndfile then quietly decodes what is there, so a cut-off wav would pass.
    Placeholder sizes of streamed files (0, 0xFFFFFFFF) are not truncation."""
    m = _DATA_CHUNK.search(header_log or "")
    if not m:
        return None
    declared, present = int(m.group(1)), int(m.group(2))
    if declared > present and declared not in _PLACEHOLDER_SIZES:
        return declared, present
    return None


_DATA_CHUNK = re.compile(r"^\s*(?:data|SSND)\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
_PLACEHOLDER_SIZES = {0, 0xFFFFFFFF, 0xFFFFFFFF - 1, 0x7FFFFFFF}
_UNKNOWN_LENGTH = 2**62  # libsndfile reports a huge frame count when the header does not know it


def _format_for(path: Path) -> str:
    ext = path.suffix.lower().lstrip(".")
    formats = {"wav": "WAV", "flac": "FLAC", "ogg": "OGG", "mp3": "MP3", "aiff": "AIFF", "aif": "AIFF"}
    if ext not in formats:
        raise AudioError(path, f"cannot write '.{ext}' files (use one of: {', '.join(sorted(formats))})")
    return formats[ext]


def _is_torch(x) -> bool:
    return type(x).__module__.startswith("torch")


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__
