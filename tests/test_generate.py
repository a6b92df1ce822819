"""generate.py: the incremental generator against the parallel forward (teacher forcing), the
numba kernel against the torch path, chunked streaming, batching, sampling modes, inputs."""

import numpy as np
import pytest
import torch

from audio_vq import pitch
from audio_vq.audio import mulaw_decode
from audio_vq.generate import Generator
from audio_vq.models.vqvae import VQVAE

HOP = 16
BASE = {
    "encoder": {"channels": 16, "strides": [2, 2, 2, 2], "residual_layers": 0},  # hop 16
    "quantizer": {"kind": "vector", "dim": 8, "codebook_size": 16},
    "decoder": {
        "stacks": 2,
        "layers_per_stack": 3,
        "residual_channels": 16,
        "gate_channels": 32,
        "skip_channels": 32,
        "speaker_dim": 4,
    },
}
VARIANTS = {
    "repeat": {},
    "transposed+cond_layers": {"upsample": "transposed", "cond_layers": 2},
    "kernel3+mixture": {"kernel_size": 3, "output": "logistic_mixture", "mixtures": 4},
    "pitch=frame": {"pitch": "frame"},
    "pitch=excitation, 3 harmonics": {"pitch": "excitation", "harmonics": 3},
}


def build(seed=0, scale=2.5, **decoder):
    """A tiny VQ-VAE with decoder weights scaled up (logits of order 10, not trivially small)
    and random biases and upsamplers (which start at zero / as "repeat")."""
    cfg = {**BASE, "decoder": {**BASE["decoder"], **decoder}}
    torch.manual_seed(seed)
    model = VQVAE.from_config(cfg, num_speakers=3).eval()
    with torch.no_grad():
        for name, p in model.decoder.named_parameters():
            if name.endswith("bias") or name.startswith("upsample"):
                p.add_(torch.randn_like(p) * 0.3)
            p.mul_(scale)
        if model.speakers is not None:
            model.speakers.weight.normal_(0, 1)
    if model.uses_pitch:  # three registers: 110, 150 and 220 Hz
        model.set_pitch_stats(
            {i: pitch.PitchStats(float(np.log(f)), 0.1 + 0.05 * i, 1) for i, f in enumerate([110.0, 150.0, 220.0])}
        )
    return model


def pitch_inputs(model, batch, frames, seed=0):
    """(f0 (B, frames) Hz with unvoiced stretches, excitation (B, E, frames * HOP)) for a pitch
    model (Nones where it reads none): an excitation phase-locked to nothing, noise included."""
    if not model.uses_pitch:
        return None, None
    rng = np.random.default_rng(seed)
    f0 = np.where(rng.random((batch, frames)) < 0.7, rng.uniform(80, 300, (batch, frames)), 0.0)
    e = None
    if model.uses_excitation:
        e = torch.from_numpy(np.stack([pitch.excitation(f, HOP, 16000, model.decoder.harmonics, rng) for f in f0]))
    return torch.from_numpy(f0).float(), e


@pytest.fixture(scope="module")
def model():
    return build()


@pytest.fixture(scope="module")
def gens(model):
    return {"numba": Generator(model, backend="numba", threads=1), "torch": Generator(model, backend="torch")}


def random_codes(lengths, seed=0, k=16):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, k, (1, n)) for n in lengths]  # (levels = 1, frames) each


# -- teacher forcing: the incremental path equals the parallel forward -------------------------


@pytest.mark.parametrize("backend, batch", [("numba", 2), ("numba", 5), ("torch", 2)])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_teacher_forced_logits_equal_the_parallel_forward(backend, batch, variant):
    """B=2: the kernel computes the past taps a block of dilation steps at a time; B=5: per
    step, four streams sharing each weight load (its other code path)."""
    model = build(seed=1, **VARIANTS[variant])
    gen = Generator(model, backend=backend)
    gen.chunk_samples = 3 * HOP  # state must carry over chunk boundaries (and transposed margins)
    frames = 14
    T = frames * HOP - 5  # longer than the receptive field, not a multiple of the hop
    assert T > model.decoder.receptive_field
    gen_ = torch.Generator().manual_seed(2)
    x = torch.randint(0, 256, (batch, frames * HOP), generator=gen_)
    codes = torch.randint(0, 16, (batch, 1, frames), generator=gen_)
    speakers = torch.tensor([0, 2, 1, 1, 0][:batch])
    f0, e = pitch_inputs(model, batch, frames)
    with torch.no_grad():
        c = model.decoder_conditioning(model.latents(codes), f0, speakers)
        expected = model.decoder(x, c, model.speaker_vector(speakers), e)[:, :, :T]
    got = gen.teacher_forced_logits(x[:, :T], codes, speakers, f0, e)
    assert got.shape == expected.shape
    assert expected.abs().max() > 5  # the scaled weights give logits that are not trivially small
    assert not torch.allclose(expected[0], expected[1], atol=1e-2)  # the rows differ
    # float32 sums in other orders (the forward's GEMMs are the BLAS kernels this CPU picks): up to
    # ~1.3e-4 on logits of magnitude 5-10 seen; a wrong tap or state differs by O(1)
    torch.testing.assert_close(got.float(), expected, rtol=1e-4, atol=3e-4)


def test_teacher_forcing_is_sensitive_to_a_wrong_convention(model, gens):
    """The equality above is not vacuous: feeding x unshifted (a one-sample misalignment)
    breaks it."""
    frames, T = 10, 10 * HOP
    x = torch.randint(0, 256, (2, T), generator=torch.Generator().manual_seed(3))
    codes = torch.randint(0, 16, (2, 1, frames), generator=torch.Generator().manual_seed(4))
    speakers = torch.tensor([1, 0])
    with torch.no_grad():
        expected = model.decoder(x, model.latents(codes), model.speaker_vector(speakers))
    shifted = torch.cat([x[:, 1:], x[:, -1:]], dim=1)
    got = gens["numba"].teacher_forced_logits(shifted, codes, speakers)
    assert not torch.allclose(got, expected, rtol=1e-4, atol=1e-4)


# -- sampling: kernel == torch, chunked == one-shot, batch member == alone ---------------------


def test_kernel_and_torch_give_the_same_samples(gens):
    codes = random_codes([25, 17, 31], seed=1)
    speakers = [2, 0, 1]
    a = gens["numba"].generate(codes, speakers, seed=7)
    b = gens["torch"].generate(codes, speakers, seed=7)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert len(np.unique(np.concatenate(a))) > 20  # it really sampled
    # and with explicit uniforms
    rng = np.random.default_rng(5)
    u = [rng.random(c.shape[-1] * HOP) for c in codes]
    a = gens["numba"].generate(codes, speakers, uniforms=u)
    b = gens["torch"].generate(codes, speakers, uniforms=u)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_stream_in_chunks_equals_one_shot(gens, backend):
    gen = gens[backend]
    (codes,) = random_codes([23], seed=2)
    whole = gen.generate([codes], [1], seed=11)[0]
    pieces = list(gen.stream(codes, 1, chunk_frames=5, seed=11))
    assert [len(p) for p in pieces] == [5 * HOP] * 4 + [3 * HOP]
    np.testing.assert_array_equal(np.concatenate(pieces), whole)
    # argmax and explicit uniforms stream too
    u = np.random.default_rng(1).random(codes.shape[-1] * HOP)
    np.testing.assert_array_equal(
        np.concatenate(list(gen.stream(codes, 1, chunk_frames=7, uniforms=u))),
        gen.generate([codes], [1], uniforms=[u])[0],
    )
    np.testing.assert_array_equal(
        np.concatenate(list(gen.stream(codes, 1, chunk_frames=4, argmax=True))),
        gen.generate([codes], [1], argmax=True)[0],
    )


@pytest.mark.parametrize("backend, threads", [("numba", 1), ("numba", 2), ("torch", None)])
def test_batch_member_equals_the_utterance_alone(model, backend, threads):
    gen = Generator(model, backend=backend, threads=threads)
    gen.chunk_samples = 4 * HOP  # members end inside and at chunk boundaries
    codes = random_codes([9, 20, 4, 13], seed=3)
    speakers = [0, 1, 2, 1]
    batch = gen.generate(codes, speakers, seed=5)
    for i, (c, s) in enumerate(zip(codes, speakers)):
        alone = gen.generate([c], [s], seed=5, first_index=i)[0]
        np.testing.assert_array_equal(batch[i], alone)
    # the index matters: another index draws other uniforms
    assert not np.array_equal(gen.generate([codes[1]], [1], seed=5)[0], batch[1])


def test_odd_channel_counts_batch_and_teacher_forcing():
    """Channel counts that are no multiple of the vector width take the kernel's scalar tails:
    still equal to the parallel forward, and a batch member still equals the utterance alone."""
    model = build(seed=6, residual_channels=10, gate_channels=22, skip_channels=13, speaker_dim=3)
    gen = Generator(model, backend="numba")
    frames = 9
    x = torch.randint(0, 256, (5, frames * HOP), generator=torch.Generator().manual_seed(1))
    codes = torch.randint(0, 16, (5, 1, frames), generator=torch.Generator().manual_seed(2))
    speakers = torch.tensor([0, 1, 2, 0, 1])
    with torch.no_grad():
        expected = model.decoder(x, model.latents(codes), model.speaker_vector(speakers))
    torch.testing.assert_close(gen.teacher_forced_logits(x, codes, speakers), expected, rtol=1e-4, atol=1e-4)
    lists = random_codes([11, 6, 9, 14, 3], seed=7)
    batch = gen.generate(lists, [0, 1, 2, 0, 1], seed=3)
    for i in range(5):
        np.testing.assert_array_equal(
            batch[i], gen.generate([lists[i]], [[0, 1, 2, 0, 1][i]], seed=3, first_index=i)[0]
        )


def test_threads_do_not_change_the_output(model, gens):
    codes = random_codes([12, 30, 7, 18, 25], seed=4)
    speakers = [0, 1, 2, 0, 1]
    one = gens["numba"].generate(codes, speakers, seed=2)
    two = Generator(model, backend="numba", threads=2).generate(codes, speakers, seed=2)
    for x, y in zip(one, two):
        np.testing.assert_array_equal(x, y)


def test_different_speakers_and_codes_give_different_audio(gens):
    (codes,) = random_codes([20], seed=6)
    a = gens["numba"].generate([codes, codes], [0, 1], argmax=True)
    assert not np.array_equal(a[0], a[1])


# -- sampling modes -----------------------------------------------------------------------------


def test_argmax_is_deterministic_and_equal_across_backends(gens):
    codes = random_codes([15, 22], seed=8)
    a = gens["numba"].generate(codes, [1, 2], argmax=True, seed=0)
    b = gens["numba"].generate(codes, [1, 2], argmax=True, seed=123)
    c = gens["torch"].generate(codes, [1, 2], argmax=True)
    for x, y, z in zip(a, b, c):
        np.testing.assert_array_equal(x, y)
        np.testing.assert_array_equal(x, z)


def test_low_temperature_approaches_argmax(gens):
    codes = random_codes([20], seed=9)
    greedy = gens["numba"].generate(codes, [0], argmax=True)[0]
    cold = gens["numba"].generate(codes, [0], temperature=1e-6, seed=3)[0]
    warm = gens["numba"].generate(codes, [0], temperature=1.0, seed=3)[0]
    np.testing.assert_array_equal(cold, greedy)
    assert not np.array_equal(warm, greedy)
    # the torch path agrees
    np.testing.assert_array_equal(gens["torch"].generate(codes, [0], temperature=1e-6, seed=3)[0], greedy)


def test_temperature_changes_the_spread(gens):
    codes = random_codes([40], seed=10)
    hot = gens["numba"].generate(codes, [0], temperature=2.0, seed=1)[0]
    cold = gens["numba"].generate(codes, [0], temperature=0.3, seed=1)[0]
    assert np.std(np.diff(hot)) > np.std(np.diff(cold))


def test_output_lengths_dtype_and_range(gens):
    codes = random_codes([1, 7, 0, 12], seed=12)
    for gen in gens.values():
        out = gen.generate(codes, [0, 1, 2, 0], seed=1)
        assert [len(o) for o in out] == [HOP, 7 * HOP, 0, 12 * HOP]
        for o in out:
            assert o.dtype == np.float32 and np.all(np.abs(o) <= 1.0)
            # categorical output: the audio is made of mu-law levels
            levels = mulaw_decode(np.arange(256))
            assert np.all(np.isin(o, levels))
    assert gens["numba"].generate([], []) == []
    assert list(gens["numba"].stream(np.zeros((1, 0), np.int64), 0, chunk_frames=3)) == []


def test_codes_as_tensors_and_frame_rate_conditioning(gens):
    codes = torch.tensor([[3, 1, 4, 1, 5, 9, 2, 6]])
    a = gens["numba"].generate([codes], [1], seed=4)[0]
    b = gens["numba"].generate([codes.numpy()], [1], seed=4)[0]
    np.testing.assert_array_equal(a, b)
    # "repeat" conditioning is kept at frame rate: one feature row per frame, not per sample
    (utt,) = gens["numba"]._utterances([codes], [1])
    assert gens["numba"]._features(utt, 0, 8 * HOP).shape == (8, 8)


@pytest.fixture(scope="module")
def mixture_model():
    model = build(seed=3, scale=1.0, output="logistic_mixture", mixtures=4)
    with torch.no_grad():  # narrow logistics: scales of about 0.05
        model.decoder.head_out.bias[8:].fill_(-3.0)
    return model


def test_logistic_mixture_in_both_paths(mixture_model):
    gn = Generator(mixture_model, backend="numba")
    gt = Generator(mixture_model, backend="torch")
    codes = random_codes([12, 9], seed=13)
    a = gn.generate(codes, [0, 2], seed=4)
    b = gt.generate(codes, [0, 2], seed=4)
    for x, y in zip(a, b):
        assert x.dtype == np.float32 and x.shape == y.shape and np.all(np.abs(x) <= 1)
        np.testing.assert_allclose(x, y, atol=1e-4)
        assert len(np.unique(x)) > 0.8 * len(x)  # continuous values, not mu-law levels
    for x, y in zip(gn.generate(codes, [0, 2], argmax=True), gt.generate(codes, [0, 2], argmax=True)):
        np.testing.assert_allclose(x, y, atol=1e-4)
    # caller-supplied uniforms (component pick, logistic draw) drive both paths alike
    # catches: one path reading the two columns of given uniforms otherwise (swapped, or column 0 twice)
    u = [np.random.default_rng(0).random((c.shape[-1] * HOP, 2)) for c in codes]
    for x, y, seeded in zip(gn.generate(codes, [0, 2], uniforms=u), gt.generate(codes, [0, 2], uniforms=u), a):
        np.testing.assert_allclose(x, y, atol=1e-4)
        assert not np.allclose(x, seeded, atol=1e-2)  # the given uniforms are used, not the seed's
    with pytest.raises(ValueError, match=r"shape \(192, 2\)"):
        gn.generate(codes[:1], [0], uniforms=[np.zeros(192)])
    pieces = list(gn.stream(codes[0], 0, chunk_frames=5, seed=4))
    np.testing.assert_array_equal(np.concatenate(pieces), a[0])


@pytest.mark.parametrize("output", ["categorical", "logistic_mixture"])
@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_seeded_sampling_draws_the_distributions_uniforms(model, mixture_model, output, backend):
    """The documented seeding: utterance i's uniforms are its output distribution's draw from
    default_rng([seed, first_index + i]). Catches the generator drawing its own count or shape
    of uniforms instead of asking the distribution (a mixture then gets one column, or the
    categorical two and its stream shifts)."""
    m = model if output == "categorical" else mixture_model
    dist = m.decoder.distribution
    assert dist.kind == output and dist.uniform_shape(5) == ((5,) if output == "categorical" else (5, 2))
    gen = Generator(m, backend=backend)
    codes = random_codes([7, 5], seed=21)
    seeded = gen.generate(codes, [1, 0], seed=9, first_index=3)
    given = [dist.draw_uniforms(np.random.default_rng([9, 3 + i]), c.shape[-1] * HOP) for i, c in enumerate(codes)]
    for x, y in zip(seeded, gen.generate(codes, [1, 0], uniforms=given)):
        np.testing.assert_array_equal(x, y)


def test_transposed_upsampling_generates_in_both_paths():
    model = build(seed=4, upsample="transposed")
    codes = random_codes([11], seed=14)
    gens = [Generator(model, backend=b) for b in ("numba", "torch")]
    for g in gens:
        g.chunk_samples = 3 * HOP
    a, b = (g.generate(codes, [1], argmax=True)[0] for g in gens)
    np.testing.assert_array_equal(a, b)


def test_model_without_speakers():
    model = build(seed=5, speaker_dim=0)
    assert model.speakers is None
    codes = random_codes([6], seed=15)
    out = Generator(model, backend="numba").generate(codes, None, seed=1)
    np.testing.assert_array_equal(out[0], Generator(model, backend="torch").generate(codes, [None], seed=1)[0])


# -- the fast tanh and bad inputs ---------------------------------------------------------------


def test_kernel_math_accuracy():
    from audio_vq._generate_kernel import exp_nonpositive_array, fast_tanh_array, gate_array

    x = np.linspace(-20, 20, 400_001).astype(np.float32)
    x64 = x.astype(np.float64)
    assert np.abs(fast_tanh_array(x) - np.tanh(x64)).max() < 1e-6
    y = np.roll(x, 12345)
    assert np.abs(gate_array(x, y) - np.tanh(x64) / (1 + np.exp(-y.astype(np.float64)))).max() < 1e-6
    z = -np.concatenate([np.linspace(0, 40, 100_001), np.geomspace(1e-12, 700, 1001)])
    assert np.max(np.abs(exp_nonpositive_array(z) / np.exp(z) - 1)) < 1e-14


def test_progress_bar(gens, capsys):
    codes = random_codes([3, 5], seed=16)
    out = Generator(gens["numba"].model, backend="numba", threads=2).generate(codes, [0, 1], seed=0, progress=True)
    np.testing.assert_array_equal(out[1], gens["numba"].generate(codes, [0, 1], seed=0)[1])
    assert "generate" in capsys.readouterr().err


def test_bad_inputs_are_refused(gens):
    gen = gens["numba"]
    good = np.array([[1, 2, 3]])
    with pytest.raises(ValueError, match=r"codes\[1\] holds unit 16, outside the codebook \[0, 16\)"):
        gen.generate([good, np.array([[0, 16]])], [0, 0])
    with pytest.raises(ValueError, match="outside the codebook"):
        gen.generate([np.array([[-1, 2]])], [0])
    with pytest.raises(ValueError, match=r"speaker index 3 is not in the table of 3 speakers"):
        gen.generate([good], [3])
    with pytest.raises(ValueError, match="speaker index -1"):
        gen.stream(good, -1, chunk_frames=2)  # at the call, not at the first chunk
    with pytest.raises(ValueError, match="2 code sequences but 1 speakers"):
        gen.generate([good, good], [0])
    with pytest.raises(ValueError, match="speaker-conditioned"):
        gen.generate([good], None)
    with pytest.raises(ValueError, match=r"must be \(levels, frames\) with 1 <= levels <= 1"):
        gen.generate([np.zeros((2, 3), np.int64)], [0])  # two levels for a one-codebook model
    with pytest.raises(ValueError, match=r"must be \(levels, frames\)"):
        gen.generate([np.array([1, 2, 3])], [0])
    with pytest.raises(ValueError, match="sequence of per-utterance"):
        gen.generate(good, [0])
    with pytest.raises(ValueError, match="temperature"):
        gen.generate([good], [0], temperature=0.0)
    with pytest.raises(ValueError, match=r"uniforms\[0\] must have shape \(48,\)"):
        gen.generate([good], [0], uniforms=[np.zeros(47)])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        gen.generate([good], [0], uniforms=[np.full(48, 2.0)])
    with pytest.raises(ValueError, match="chunk_frames"):
        gen.stream(good, 0, chunk_frames=0)
    with pytest.raises(ValueError, match="backend"):
        Generator(gen.model, backend="cuda")


def test_step_weights_are_the_one_contract_of_both_step_paths(model):
    """WaveNet.step_weights(): the documented shapes, detached from the parameters, and what
    both the torch path and the numba kernel read (the kernel's arrays are built from it)."""
    from audio_vq.generate import _kernel_weights
    from audio_vq.models.wavenet import StepWeights

    dec = model.decoder
    w = dec.step_weights()
    L, K, R, G = dec.num_layers, dec.kernel_size, dec.residual_channels, dec.gate_channels
    S, C = w.skip_b.shape[0], dec.out_channels
    assert w.wd.shape == (L, K * R, G) and w.dil_b.shape == (L * G,) and w.wc.shape[1] == L * G
    assert w.res_w.shape == (L, G // 2, R) and w.skip_w.shape == (L, G // 2, S) and w.out_w.shape == (S, C)
    assert not w.res_w[-1].any()  # the last layer has no residual conv
    assert all(
        not getattr(w, f).requires_grad and getattr(w, f).is_contiguous() for f in StepWeights.__dataclass_fields__
    )
    k = _kernel_weights(w)
    np.testing.assert_array_equal(k.sr_w[:, :, :S], w.skip_w.numpy())
    np.testing.assert_array_equal(k.skip_last, w.skip_w[-1].numpy())
    assert Generator(model, backend="torch")._torch_weights.wd.data_ptr() != dec.layers[0].dilated.weight.data_ptr()


# -- pitch -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def excitation_model():
    return build(seed=5, pitch="excitation", harmonics=2)


def test_the_excitation_and_the_pitch_features_reach_the_generated_audio(excitation_model):
    """Teacher-forced logits move when the excitation or the contour changes (a generator that
    dropped either would still equal itself)."""
    model = excitation_model
    gen = Generator(model, backend="numba", threads=1)
    frames = 12
    x = torch.randint(0, 256, (1, frames * HOP), generator=torch.Generator().manual_seed(6))
    codes = torch.randint(0, 16, (1, 1, frames), generator=torch.Generator().manual_seed(7))
    f0, e = pitch_inputs(model, 1, frames, seed=8)
    base = gen.teacher_forced_logits(x, codes, [1], f0, e)
    assert not torch.allclose(base, gen.teacher_forced_logits(x, codes, [1], f0, torch.zeros_like(e)), atol=1e-2)
    assert not torch.allclose(base, gen.teacher_forced_logits(x, codes, [1], f0 * 1.5, e), atol=1e-2)


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_a_pitch_model_streams_and_batches_like_one_shot(excitation_model, backend):
    """With pitch on, the excitation (built from the contour, its noise seeded by (seed,
    first_index + i)) keeps every promise of the plain generator: a batch member equals the
    utterance alone, streaming in chunks equals one shot, and both backends agree."""
    model = excitation_model
    gen = Generator(model, backend=backend, threads=1)
    codes = random_codes([9, 14], seed=9)
    f0, _ = pitch_inputs(model, 2, 14, seed=10)
    contours = [f0[0, :9].numpy(), f0[1].numpy()]
    both = gen.generate(codes, [0, 2], f0=contours, seed=4)
    alone = gen.generate(codes[1:], [2], f0=contours[1:], seed=4, first_index=1)
    np.testing.assert_array_equal(both[1], alone[0])
    streamed = np.concatenate(list(gen.stream(codes[1], 2, chunk_frames=4, seed=4, first_index=1, f0=contours[1])))
    np.testing.assert_array_equal(streamed, both[1])
    other = Generator(model, backend="torch" if backend == "numba" else "numba", threads=1)
    agree = np.mean(other.generate(codes, [0, 2], f0=contours, seed=4)[1] == both[1])
    assert agree > 0.99  # float rounding may move a rare CDF boundary across u (generate.py)


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_voiced_temperature_samples_the_voiced_samples_only(excitation_model, backend):
    """voiced_temperature applies where the contour is voiced, temperature elsewhere. Catches: the
    voiced temperature ignored, applied everywhere, or applied to the unvoiced samples."""
    gen = Generator(excitation_model, backend=backend, threads=1)
    codes = random_codes([12], seed=11)
    voiced_frames = 5
    f0 = [np.r_[np.full(voiced_frames, 140.0), np.zeros(7)]]  # voiced, then unvoiced
    cut = voiced_frames * HOP

    def run(**kw):
        return gen.generate(codes, [1], f0=f0, seed=3, **kw)[0]

    mixed = run(temperature=1.0, voiced_temperature=0.3)
    # the voiced samples come first: until the switch, the stream is the one sampled at 0.3 ...
    np.testing.assert_array_equal(mixed[:cut], run(temperature=0.3)[:cut])
    assert not np.array_equal(mixed[:cut], run(temperature=1.0)[:cut])
    # ... and where nothing is voiced it changes nothing, where all is, it is the temperature
    silent = [np.zeros(12)]
    np.testing.assert_array_equal(
        gen.generate(codes, [1], f0=silent, seed=3, voiced_temperature=0.3)[0],
        gen.generate(codes, [1], f0=silent, seed=3)[0],
    )
    voiced = [np.full(12, 140.0)]
    np.testing.assert_array_equal(
        gen.generate(codes, [1], f0=voiced, seed=3, voiced_temperature=0.3)[0],
        gen.generate(codes, [1], f0=voiced, seed=3, temperature=0.3)[0],
    )
    streamed = np.concatenate(
        list(gen.stream(codes[0], 1, chunk_frames=4, seed=3, f0=f0[0], temperature=1.0, voiced_temperature=0.3))
    )
    np.testing.assert_array_equal(streamed, mixed)
    with pytest.raises(ValueError, match="voiced_temperature must be > 0"):
        run(voiced_temperature=0.0)


def test_pitch_inputs_are_checked(excitation_model, model):
    gen = Generator(excitation_model, backend="numba", threads=1)
    codes = random_codes([5])
    with pytest.raises(ValueError, match=r"pitch-conditioned \(model.decoder.pitch=excitation\): pass 1 F0 contours"):
        gen.generate(codes, [0])
    with pytest.raises(ValueError, match=r"f0\[0\] must be a finite contour \(frames=5,\)"):
        gen.generate(codes, [0], f0=[np.zeros(4)])
    with pytest.raises(ValueError, match="0 = unvoiced"):
        gen.generate(codes, [0], f0=[np.full(5, np.nan)])
    with pytest.raises(ValueError, match="excitation"):
        gen.teacher_forced_logits(
            torch.zeros(1, 5 * HOP, dtype=torch.long), torch.zeros(1, 1, 5, dtype=torch.long), [0], torch.zeros(1, 5)
        )
    with pytest.raises(ValueError, match="no pitch input"):
        Generator(model, backend="numba", threads=1).generate(codes, [0], f0=[np.zeros(5)])
