"""UnitExtractor: batched equals one-by-one, long-file windows equal one pass, dedup round trip."""

import numpy as np
import pytest
import soundfile as sf

from audio_vq.manifest import read_manifest
from audio_vq.units import UnitExtractor, deduplicate, expand

from tiny import TINY_HOP


@pytest.fixture(scope="module")
def extractor(tiny_trained):
    return UnitExtractor.from_pretrained(tiny_trained / "run" / "model")


@pytest.fixture(scope="module")
def waves(tiny_trained):
    utts = read_manifest(tiny_trained / "data")[:5]
    # lengths that are not multiples of the hop, very different from each other
    return [sf.read(u.path, dtype="float32")[0][: 700 + 1234 * i + 5] for i, u in enumerate(utts)]


def test_deduplicate_and_expand_are_inverse():
    codes = np.array([3, 3, 3, 1, 4, 4, 1, 1])
    units, durations = deduplicate(codes)
    assert units.tolist() == [3, 1, 4, 1] and durations.tolist() == [3, 1, 2, 2]
    assert expand(units, durations).tolist() == codes.tolist()
    assert deduplicate(np.zeros(0, int))[0].size == 0
    with pytest.raises(ValueError, match=">= 1"):
        expand(np.array([1]), np.array([0]))


def test_deduplicate_with_levels_collapses_runs_of_whole_frames():
    codes = np.array([[7, 7, 7, 3, 3], [1, 1, 2, 2, 2]])  # level 1 changes where level 0 does not
    units, durations = deduplicate(codes)
    assert units.tolist() == [[7, 7, 3], [1, 2, 2]] and durations.tolist() == [2, 1, 2]
    assert expand(units, durations).tolist() == codes.tolist()
    assert deduplicate(codes[:1])[0].tolist() == [[7, 3]]  # one level: as the 1-D runs
    with pytest.raises(ValueError, match="3 units but 2 durations"):
        expand(units, np.array([1, 1]))


def test_frames_frame_rate_and_metadata(extractor, waves):
    u = extractor.extract(waves[1])
    assert u.codes.shape == (1, -(-len(waves[1]) // TINY_HOP)) == (1, u.num_frames)  # (Q, frames)
    assert u.frame_rate == 16_000 / TINY_HOP and u.num_samples == len(waves[1])
    assert u.codes.dtype == np.int64 and 0 <= u.codes.min() and u.codes.max() < extractor.codebook_size
    assert extractor.codebook.shape == (1, extractor.codebook_size, 8)
    assert len(extractor.checksum) == 64


@pytest.fixture(scope="module", params=["tiny", "hierarchical"])
def model_dir(request, tiny_trained):
    """A one-codebook model and a two-level hierarchy (whose top codes span several frames)."""
    return tiny_trained / "run" / "model" if request.param == "tiny" else request.getfixturevalue("tiny_hierarchical")


def test_batched_equals_one_by_one(model_dir, waves):
    extractor = UnitExtractor.from_pretrained(model_dir)
    alone = [extractor.extract(w).codes for w in waves]
    together = [u.codes for u in extractor.extract_batch(waves)]
    reversed_batch = [u.codes for u in extractor.extract_batch(waves[::-1])][::-1]
    for a, b, c in zip(alone, together, reversed_batch):
        assert np.array_equal(a, b) and np.array_equal(a, c)
    # the codes are not trivially constant, so the comparison means something
    assert len(set(np.concatenate(alone, axis=1).ravel().tolist())) > 1


def test_long_inputs_in_overlapping_windows_equal_one_pass(model_dir, waves):
    one_pass = UnitExtractor.from_pretrained(model_dir, chunk_seconds=60)
    windowed = UnitExtractor.from_pretrained(model_dir, chunk_seconds=0.05)
    x = np.concatenate(waves)
    assert windowed.num_frames(len(x)) > 5 * windowed.chunk_frames  # really cut into many windows
    assert windowed.context_frames * TINY_HOP >= windowed.model.encoder.receptive_field / 2
    assert np.array_equal(one_pass.extract(x).codes, windowed.extract(x).codes)


def test_path_and_other_sample_rates(extractor, waves, tmp_path):
    sf.write(tmp_path / "a.wav", waves[2], 16_000)
    assert np.array_equal(extractor.extract(tmp_path / "a.wav").codes, extractor.extract(waves[2]).codes)
    sf.write(tmp_path / "b.wav", np.stack([waves[2], waves[2]], 1), 16_000)  # stereo: mixed down
    assert np.array_equal(extractor.extract(str(tmp_path / "b.wav")).codes, extractor.extract(waves[2]).codes)
    at_8k = extractor.extract(waves[2][::2], sample_rate=8_000)
    assert at_8k.num_samples == len(waves[2][::2]) * 2
    with pytest.raises(ValueError, match="mono"):
        extractor.extract(np.zeros((2, 100), np.float32))


@pytest.mark.parametrize("window_frames", [None, 3, 16])
def test_streamed_codes_equal_the_whole_audios_and_wait_only_for_the_look_ahead(model_dir, waves, window_frames):
    """Fed in uneven chunks, the stream gives exactly extract's codes, and each code as soon as
    its look-ahead has arrived. Catches a window cut without its right context (codes that
    change once more audio comes), a dropped or repeated frame at a chunk's edge, and a stream
    that waits for the end."""
    extractor = UnitExtractor.from_pretrained(model_dir)
    x = np.concatenate(waves)
    sizes = np.random.default_rng(0).integers(1, 700, len(x))
    cuts = np.cumsum(sizes)[np.cumsum(sizes) < len(x)]
    chunks = np.split(x, cuts)
    received, emitted_by = 0, []  # frames emitted once each chunk had arrived
    pieces = []

    def feed():
        nonlocal received
        for chunk in chunks:
            received += len(chunk)
            yield chunk
            emitted_by.append((received, sum(p.shape[1] for p in pieces)))

    for codes in extractor.stream(feed(), window_frames):
        pieces.append(codes)
    assert np.array_equal(np.concatenate(pieces, axis=1), extractor.extract(x).codes)
    group = max(extractor.model.quantizer.level_ratios)
    window = -(-(window_frames or group) // group) * group
    for samples, frames in emitted_by[:-1]:  # every frame whose look-ahead has arrived is out
        ready = (samples - extractor.lookahead_samples) // TINY_HOP
        assert frames >= ready - window + 1
    with pytest.raises(ValueError, match="mono chunks"):
        list(extractor.stream([np.zeros((2, 10), np.float32)]))
