"""The compiled CPU kernel of the incremental WaveNet generator (see :mod:`audio_vq.generate`).

One call of :func:`run_steps` advances a group of streams (utterances decoded together) by a
range of time steps, carrying every piece of state in arrays the caller owns, so successive
calls continue exactly where the previous one stopped (chunked streaming, progress reports).

* float32 throughout the network, weights contiguous and stored (in, out);
* the matrix products are register-blocked micro-kernels emitted as LLVM IR (numba
  ``@intrinsic``): ROWS streams (or time steps) x 2 vectors of outputs stay in registers over
  the whole input dimension, with explicit fused multiply-adds in input order, so the result
  for a stream is bit for bit the same whatever the block shape, the group size or the thread
  (a batch member equals the utterance decoded alone);
* one stream reads every weight once per sample, which is bound by the L2 cache: the past taps
  of the dilated convs are therefore computed a block of ``dilation`` steps at a time (all
  their inputs are known at the block's start), which reads those weights once per block and
  brings the per-sample working set under L2; groups of 4 or more streams share each weight
  load instead and compute the past taps per step, in the same order;
* tanh * sigmoid by a clamped rational function (max error ~5e-7, one division, vectorised;
  libm's tanhf is a scalar call); the categorical CDF in float64 with a vectorised exp.

Compiled with ``nogil=True`` (groups run in parallel Python threads), ``fastmath`` and
``cache=True``: the first use compiles for ~10 s and writes the machine code under
``__pycache__``, keyed by the CPU; later processes load it.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import llvmlite.binding as llvm_binding
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

MODE_CATEGORICAL = 0  # sample a class from a categorical output
MODE_MIXTURE = 1  # sample audio from a logistic mixture, feed back its mu-law class
MODE_TEACHER = 2  # feed the given classes, record the logits
SAMPLING_MODES = {"categorical": MODE_CATEGORICAL, "logistic_mixture": MODE_MIXTURE}  # by OutputDistribution.kind

# Eigen's rational approximation of tanh (odd degree 13 / even degree 6, clamped): max
# absolute error ~3e-7 in float32, vectorisable (libm's tanhf is a scalar call).
_C = np.float32(7.90531110763549805)
_NC = np.float32(-7.90531110763549805)
_A1 = np.float32(4.89352455891786e-03)
_A3 = np.float32(6.37261928875436e-04)
_A5 = np.float32(1.48572235717979e-05)
_A7 = np.float32(5.12229709037114e-08)
_A9 = np.float32(-8.60467152213735e-11)
_A11 = np.float32(2.00018790482477e-13)
_A13 = np.float32(-2.76076847742355e-16)
_B0 = np.float32(4.89352518554385e-03)
_B2 = np.float32(2.26843463243900e-03)
_B4 = np.float32(1.18534705686654e-04)
_B6 = np.float32(1.19825839466702e-06)
_HALF = np.float32(0.5)
# fastmath without "reassoc", for the float64 exp whose range reduction must not be reassociated
_FASTMATH = {"nnan", "ninf", "nsz", "arcp", "contract", "afn"}
_ZERO = np.float32(0.0)


@njit(inline="always", fastmath=True, error_model="numpy", cache=True)
def _tanh_numerator(x2):
    """p(x^2) of tanh(x) ~ x p(x^2) / q(x^2), by Horner's rule."""
    p = _A13
    p = p * x2 + _A11
    p = p * x2 + _A9
    p = p * x2 + _A7
    p = p * x2 + _A5
    p = p * x2 + _A3
    return p * x2 + _A1


@njit(inline="always", fastmath=True, error_model="numpy", cache=True)
def _tanh_denominator(x2):
    """q(x^2) of tanh(x) ~ x p(x^2) / q(x^2)."""
    q = _B6
    q = q * x2 + _B4
    q = q * x2 + _B2
    return q * x2 + _B0


@njit(inline="always", fastmath=True, error_model="numpy", cache=True)
def fast_tanh(x):
    """tanh of a float32 by a clamped rational function (max abs error ~3e-7)."""
    x = min(max(x, _NC), _C)
    x2 = x * x
    return x * _tanh_numerator(x2) / _tanh_denominator(x2)


@njit(inline="always", fastmath=True, error_model="numpy", cache=True)
def _gate(x, y):
    """tanh(x) * sigmoid(y), sigmoid(y) = (1 + tanh(y / 2)) / 2, both by the rational function
    above with a single division (the helpers are inlined, so this is one expression)."""
    x = min(max(x, _NC), _C)
    y = min(max(_HALF * y, _NC), _C)
    x2 = x * x
    y2 = y * y
    q = _tanh_denominator(x2)
    v = _tanh_denominator(y2)
    return (x * _tanh_numerator(x2)) * (_HALF * (v + y * _tanh_numerator(y2))) / (q * v)


@njit(nogil=True, fastmath=True, error_model="numpy", cache=True)
def gate_array(x, y):
    """_gate over float32 arrays (for tests)."""
    out = np.empty_like(x)
    for i in range(x.size):
        out[i] = _gate(x[i], y[i])
    return out


@njit(nogil=True, fastmath=True, error_model="numpy", cache=True)
def fast_tanh_array(x):
    """fast_tanh over a float32 array (for tests)."""
    out = np.empty_like(x)
    for i in range(x.size):
        out[i] = fast_tanh(x[i])
    return out


# -- matrix products: register-blocked micro-kernels written as LLVM IR -----------------------
#
# LLVM's auto-vectorised loops reach about 35 GMAC/s here (256-bit, runtime alias checks, the
# accumulators in memory); these blocks keep ROWS x V vectors of accumulators in registers over
# the whole input dimension and run at 75-85 GMAC/s with AVX-512. Every output element is the
# chain acc = fma(x[j], w[j], acc) over j in order (llvm.fma: always fused, never reordered), in
# every block shape and in the scalar tail, so a stream's result does not depend on how many
# streams share the call: a batch member equals the utterance decoded alone, bit for bit.

_F32 = ir.FloatType()
_I64 = ir.IntType(64)
_I32 = ir.IntType(32)
_AVX512 = "+avx512f" in llvm_binding.get_host_cpu_features().flatten()
LANES = 16 if _AVX512 else 8  # floats per vector register
ROWS = 8 if _AVX512 else 4  # rows (streams or time steps) per block: 16 (8) accumulators


def _element_address(builder, arr, row, col):
    """The address (i64) of arr[row, col] of a 2-D numba array struct, from its strides."""
    data = builder.ptrtoint(arr.data, _I64)
    strides = cgutils.unpack_tuple(builder, arr.strides, 2)
    return builder.add(data, builder.add(builder.mul(row, strides[0]), builder.mul(col, strides[1])))


def _make_block(rows, vecs):
    """An intrinsic ``block(x, w, y, r0, o0, n_in)``: y[r0:r0+rows, o0:o0+vecs*LANES] +=
    x[r0:r0+rows, :n_in] @ w[:n_in, o0:o0+vecs*LANES] (2-D float32 arrays)."""
    vec = ir.VectorType(_F32, LANES)
    splat = ir.Constant(ir.VectorType(_I32, LANES), [0] * LANES)

    @intrinsic
    def block(typingctx, x, w, y, r0, o0, n_in):
        sig = types.void(x, w, y, types.int64, types.int64, types.int64)

        def codegen(context, builder, signature, args):
            xv, wv, yv, r0, o0, n_in = args
            xa = context.make_array(signature.args[0])(context, builder, xv)
            wa = context.make_array(signature.args[1])(context, builder, wv)
            ya = context.make_array(signature.args[2])(context, builder, yv)
            fma = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(vec, [vec, vec, vec]), "llvm.fma.v%df32" % LANES
            )
            undef = ir.Constant(vec, ir.Undefined)
            accs = []
            for s in range(rows):
                row = builder.add(r0, ir.Constant(_I64, s))
                for v in range(vecs):
                    col = builder.add(o0, ir.Constant(_I64, v * LANES))
                    ptr = builder.inttoptr(_element_address(builder, ya, row, col), vec.as_pointer())
                    slot = cgutils.alloca_once(builder, vec)
                    builder.store(builder.load(ptr, align=4), slot)
                    accs.append((slot, ptr))
            with cgutils.for_range(builder, n_in) as loop:
                j = loop.index
                ws = []
                for v in range(vecs):
                    col = builder.add(o0, ir.Constant(_I64, v * LANES))
                    ptr = builder.inttoptr(_element_address(builder, wa, j, col), vec.as_pointer())
                    ws.append(builder.load(ptr, align=4))
                for s in range(rows):
                    ptr = builder.inttoptr(
                        _element_address(builder, xa, builder.add(r0, ir.Constant(_I64, s)), j), _F32.as_pointer()
                    )
                    xs = builder.load(ptr, align=4)
                    xb = builder.shuffle_vector(builder.insert_element(undef, xs, ir.Constant(_I32, 0)), undef, splat)
                    for v in range(vecs):
                        slot = accs[s * vecs + v][0]
                        builder.store(builder.call(fma, [xb, ws[v], builder.load(slot)]), slot)
            for slot, ptr in accs:
                builder.store(builder.load(slot), ptr, align=4)
            return context.get_dummy_value()

        return sig, codegen

    return block


@intrinsic
def _fma(typingctx, a, b, c):
    """a * b + c, fused (llvm.fma.f32)."""
    sig = types.float32(types.float32, types.float32, types.float32)

    def codegen(context, builder, signature, args):
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_F32, [_F32] * 3), "llvm.fma.f32")
        return builder.call(fn, args)

    return sig, codegen


_BLOCK_R2 = _make_block(ROWS, 2)
_BLOCK_R1 = _make_block(ROWS, 1)
_BLOCK_42 = _make_block(4, 2)
_BLOCK_41 = _make_block(4, 1)
_BLOCK_18 = _make_block(1, 8)
_BLOCK_14 = _make_block(1, 4)
_BLOCK_12 = _make_block(1, 2)
_BLOCK_11 = _make_block(1, 1)


@njit(inline="always", error_model="numpy", cache=True)
def _tail(x, w, y, r0, rows, o0, n_in, n_out):
    """The columns [o0, n_out) of rows [r0, r0 + rows) one element at a time (the same chain)."""
    for s in range(r0, r0 + rows):
        for o in range(o0, n_out):
            acc = y[s, o]
            for j in range(n_in):
                acc = _fma(x[s, j], w[j, o], acc)
            y[s, o] = acc


@njit(nogil=True, error_model="numpy", cache=True)
def _matacc(x, w, y, nb):
    """y[:nb] += x[:nb] @ w for x (>= nb, n_in), w (n_in, n_out), y (>= nb, n_out), float32
    2-D arrays; y must not overlap x or w."""
    n_in = w.shape[0]
    n_out = w.shape[1]
    b = 0
    while b + ROWS <= nb:
        o = 0
        while o + 2 * LANES <= n_out:
            _BLOCK_R2(x, w, y, b, o, n_in)
            o += 2 * LANES
        while o + LANES <= n_out:
            _BLOCK_R1(x, w, y, b, o, n_in)
            o += LANES
        _tail(x, w, y, b, ROWS, o, n_in, n_out)
        b += ROWS
    while b + 4 <= nb:
        o = 0
        while o + 2 * LANES <= n_out:
            _BLOCK_42(x, w, y, b, o, n_in)
            o += 2 * LANES
        while o + LANES <= n_out:
            _BLOCK_41(x, w, y, b, o, n_in)
            o += LANES
        _tail(x, w, y, b, 4, o, n_in, n_out)
        b += 4
    while b < nb:
        o = 0
        while o + 8 * LANES <= n_out:
            _BLOCK_18(x, w, y, b, o, n_in)
            o += 8 * LANES
        while o + 4 * LANES <= n_out:
            _BLOCK_14(x, w, y, b, o, n_in)
            o += 4 * LANES
        while o + 2 * LANES <= n_out:
            _BLOCK_12(x, w, y, b, o, n_in)
            o += 2 * LANES
        while o + LANES <= n_out:
            _BLOCK_11(x, w, y, b, o, n_in)
            o += LANES
        _tail(x, w, y, b, 1, o, n_in, n_out)
        b += 1


_LOG2E = 1.4426950408889634
_LN2_HI = 0.693147180369123816490  # ln 2 split in two (Cody-Waite): k * _LN2_HI is exact
_LN2_LO = 1.90821492927058770002e-10
_INV_FACT = tuple(1.0 / math.factorial(k) for k in range(13))


@njit(nogil=True, fastmath=_FASTMATH, error_model="numpy", cache=True)
def _exp_nonpositive(x, out, bits, n):
    """out[k] = exp(x[k]) for x[k] <= 0 in float64 (relative error ~1e-16, vectorisable, where
    libm's exp is a scalar call): 2^k * exp(r), |r| <= ln2 / 2, a degree-12 Taylor polynomial,
    2^k built in the exponent bits. Arguments below -700 give ~1e-304 instead of 0."""
    for k in range(n):
        v = max(x[k], -700.0)
        kf = math.floor(v * _LOG2E + 0.5)
        r = (v - kf * _LN2_HI) - kf * _LN2_LO
        p = _INV_FACT[12]
        p = p * r + _INV_FACT[11]
        p = p * r + _INV_FACT[10]
        p = p * r + _INV_FACT[9]
        p = p * r + _INV_FACT[8]
        p = p * r + _INV_FACT[7]
        p = p * r + _INV_FACT[6]
        p = p * r + _INV_FACT[5]
        p = p * r + _INV_FACT[4]
        p = p * r + _INV_FACT[3]
        p = p * r + _INV_FACT[2]
        p = p * r + _INV_FACT[1]
        p = p * r + _INV_FACT[0]
        out[k] = p
        bits[k] = (np.int64(kf) + 1023) << 52
    scale = bits.view(np.float64)
    for k in range(n):
        out[k] = out[k] * scale[k]


@njit(nogil=True, error_model="numpy", cache=True)
def exp_nonpositive_array(x):
    """_exp_nonpositive over a float64 array (for tests)."""
    out = np.empty_like(x)
    bits = np.empty(x.size, np.int64)
    _exp_nonpositive(x, out, bits, x.size)
    return out


@njit(inline="always", fastmath=True, error_model="numpy", cache=True)
def _categorical(lg, c0, n, u, inv_temperature, cdf, tmp, bits):
    """Inverse-CDF sample from softmax(lg[c0:c0+n] / T) in float64: the first k with
    cdf[k] > u (the reference's ``categorical_sample``)."""
    m = lg[c0]
    for k in range(1, n):
        m = max(m, lg[c0 + k])
    mf = np.float64(m)
    for k in range(n):
        tmp[k] = (np.float64(lg[c0 + k]) - mf) * inv_temperature
    _exp_nonpositive(tmp, cdf, bits, n)
    total = 0.0
    for k in range(n):
        total += cdf[k]
        cdf[k] = total
    target = u * total
    for k in range(n):
        if cdf[k] > target:
            return k
    return n - 1


@njit(inline="always", error_model="numpy", cache=True)
def _argmax(lg, c0, n):
    best = 0
    m = lg[c0]
    for k in range(1, n):
        if lg[c0 + k] > m:
            m = lg[c0 + k]
            best = k
    return best


@njit(inline="always", error_model="numpy", cache=True)
def _mulaw_class(x, channels):
    """The mu-law class of audio x (float64), as ``audio.mulaw_encode``."""
    mu = channels - 1
    x = min(max(x, -1.0), 1.0)
    y = math.log1p(mu * abs(x)) / math.log1p(mu)
    if x < 0.0:
        y = -y
    return int(math.floor((y + 1.0) / 2.0 * mu + 0.5))


class KernelWeights(NamedTuple):
    """The network, float32, C-contiguous, matrices stored (in, out): the kernel's form of
    :class:`audio_vq.models.wavenet.StepWeights` (``generate._kernel_weights`` builds it).

    emb (classes, R); wd (L, (P + 1) * R, G): the dilated convs, rows [m R, (m + 1) R) = tap m,
    which multiplies the input at t - (P - m) * dilation (tap P: the current input); wc (D, L*G):
    the local-conditioning projections side by side; ws (E, L*G): the excitation's projections
    side by side (E = 0: none); sr_w (L, G/2, S + R): each layer's skip and
    residual 1x1 convs side by side (the last layer's residual part unused); res_b (L, R);
    skip_last (G/2, S): the last layer's skip conv alone; skip_b (S,): the skip biases summed
    over layers; hid_w (S, S), hid_b (S,), out_w (S, C), out_b (C,): the output head.
    """

    emb: np.ndarray
    wd: np.ndarray
    wc: np.ndarray
    ws: np.ndarray
    sr_w: np.ndarray
    res_b: np.ndarray
    skip_last: np.ndarray
    skip_b: np.ndarray
    hid_w: np.ndarray
    hid_b: np.ndarray
    out_w: np.ndarray
    out_b: np.ndarray


class Geometry(NamedTuple):
    """What the recurrence needs besides weights, fixed for a model.

    dil (L,) int64; past_taps P = kernel_size - 1; ring_off (L,) int64: offsets of the layers'
    rings of P * dil slots; past_off (L,) int64: offsets of the past-tap blocks of dil rows;
    residual_scale, skip_scale; log_scale_min (logistic mixture); mu_law_channels.
    """

    dil: np.ndarray
    ring_off: np.ndarray
    past_off: np.ndarray
    past_taps: int
    residual_scale: float
    skip_scale: float
    log_scale_min: float
    mu_law_channels: int


class Streams(NamedTuple):
    """A group's state (updated in place) and its per-stream inputs.

    ring (nb, sum(P * dil), R): the residual inputs of each layer, time s in slot s % (P * dil);
    past (nb, sum(dil), G): the current past-tap blocks (block_past only); prev (nb,) int64: the
    next input class; consts (nb, L*G): speaker projection + dilated-conv bias per stream;
    lengths (nb,) int64: samples per stream, non-increasing (a stream stops at its length);
    block_past: compute the past taps' products a block of ``dil`` steps at a time (at
    t % dil == 0 every past input of the next dil steps is known, so each past-tap weight is read
    once per dil steps instead of every step: what makes one stream fast, its weights then fit
    in L2); else per step with the current tap (for groups of >= 4 streams, which share each
    weight load anyway). Both sum in the same order.
    """

    ring: np.ndarray
    past: np.ndarray
    prev: np.ndarray
    consts: np.ndarray
    lengths: np.ndarray
    block_past: bool


@njit(nogil=True, fastmath=True, error_model="numpy", cache=True)
def run_steps(
    weights,
    geometry,
    streams,
    feats,
    row0,
    feat_hop,
    source,
    t0,
    t1,
    uniforms,
    mode,
    temperature,
    argmax,
    teacher,
    out_class,
    out_audio,
    out_logits,
):
    """Advance the streams of one group over time steps [t0, t1).

    weights: :class:`KernelWeights`; geometry: :class:`Geometry`; streams: :class:`Streams`
    (its ring, past and prev are updated in place).
    feats (nb, rows, D): local features; row r (absolute: row0 + r) conditions samples
    [r * feat_hop, (r + 1) * feat_hop). Projected here once per call: (rows, L*G).
    source (nb, t1 - t0, E) float32: the excitation of each sample (E = 0: none), added to every
    gate through ``ws`` at each step.
    uniforms (nb, t1 - t0, 2) float64; temperature (nb, t1 - t0) float64, each sample's;
    teacher (nb, t1 - t0) int64 (MODE_TEACHER only).
    Outputs at [b, t - t0]: out_class (nb, n) int64; out_audio (nb, n) float32 (mixture);
    out_logits (nb, n, C) float32 (MODE_TEACHER).

    Per element the dilated conv is ``a = chain_cur(chain_past(0)) + table [+ source @ ws]`` (chain: fused
    multiply-adds over the inputs in order), whichever mode and however many streams.
    """
    emb, wd, wc, sr_w, res_b = weights.emb, weights.wd, weights.wc, weights.sr_w, weights.res_b
    ws = weights.ws
    skip_last, skip_b, hid_w, hid_b = weights.skip_last, weights.skip_b, weights.hid_w, weights.hid_b
    out_w, out_b = weights.out_w, weights.out_b
    dil, ring_off, past_off, past_taps = geometry.dil, geometry.ring_off, geometry.past_off, geometry.past_taps
    residual_scale, skip_scale = geometry.residual_scale, geometry.skip_scale
    log_scale_min, mu_law_channels = geometry.log_scale_min, geometry.mu_law_channels
    ring, past, prev, consts = streams.ring, streams.past, streams.prev, streams.consts
    lengths, block_past = streams.lengths, streams.block_past
    nb = ring.shape[0]
    R = emb.shape[1]
    L = wd.shape[0]
    G = wd.shape[2]
    H = G // 2
    S = skip_last.shape[1]
    SR = sr_w.shape[2]
    C = out_w.shape[1]
    LG = wc.shape[1]
    E = ws.shape[0]
    rows = feats.shape[1]
    PR = past_taps * R
    rs = np.float32(residual_scale)
    ss = np.float32(skip_scale)
    # the conditioning columns of this call: consts + feats @ wc, (rows, L*G) per stream
    table = np.empty((nb, rows, LG), np.float32)
    for b in range(nb):
        if lengths[b] > t0:
            for q in range(rows):
                for c in range(LG):
                    table[b, q, c] = consts[b, c]
            _matacc(feats[b], wc, table[b], rows)
    xin = np.empty((nb, PR + R), np.float32)  # [past taps | current input]
    h = np.empty((nb, R), np.float32)
    a = np.empty((nb, G), np.float32)
    z = np.empty((nb, H), np.float32)
    sr = np.empty((nb, SR), np.float32)  # [running skip sum | residual]
    skip = np.empty((nb, S), np.float32)
    hid = np.empty((nb, S), np.float32)
    lg = np.empty((nb, C), np.float32)
    cdf = np.empty(C, np.float64)
    etmp = np.empty(C, np.float64)
    ebits = np.empty(C, np.int64)
    mixtures = C // 3
    nact = nb
    for t in range(t0, t1):
        while nact > 0 and lengths[nact - 1] <= t:
            nact -= 1
        if nact == 0:
            break
        j = t - t0
        q = t // feat_hop - row0
        for b in range(nact):
            p = prev[b]
            for c in range(R):
                h[b, c] = emb[p, c]
            for c in range(S):
                sr[b, c] = skip_b[c]
        for i in range(L):
            d = dil[i]
            if past_taps > 0 and block_past:
                ro = ring_off[i]
                m_len = past_taps * d
                phase = t % d
                po = past_off[i]
                if phase == 0:  # a new block: past-tap products of steps t .. t + d - 1
                    for b in range(nact):
                        for k in range(d):
                            for o in range(G):
                                past[b, po + k, o] = _ZERO
                        for m in range(past_taps):
                            s0 = ro + (t - (past_taps - m) * d) % m_len
                            _matacc(ring[b, s0 : s0 + d], wd[i, m * R : (m + 1) * R], past[b, po : po + d], d)
                slot = ro + t % m_len
                for b in range(nact):
                    for o in range(G):
                        a[b, o] = past[b, po + phase, o]
                    for c in range(R):
                        ring[b, slot, c] = h[b, c]
                _matacc(h, wd[i, PR:], a, nact)
            elif past_taps > 0:  # past taps and current input in one product
                ro = ring_off[i]
                m_len = past_taps * d
                for b in range(nact):
                    for m in range(past_taps):
                        s0 = ro + (t - (past_taps - m) * d) % m_len
                        for c in range(R):
                            xin[b, m * R + c] = ring[b, s0, c]
                    for c in range(R):
                        xin[b, PR + c] = h[b, c]
                    for o in range(G):
                        a[b, o] = _ZERO
                slot = ro + t % m_len
                for b in range(nact):
                    for c in range(R):
                        ring[b, slot, c] = h[b, c]
                _matacc(xin, wd[i], a, nact)
            else:
                for b in range(nact):
                    for o in range(G):
                        a[b, o] = _ZERO
                _matacc(h, wd[i], a, nact)
            for b in range(nact):
                for o in range(G):
                    a[b, o] = a[b, o] + table[b, q, i * G + o]
                for e in range(E):
                    v = source[b, j, e]
                    for o in range(G):
                        a[b, o] = a[b, o] + v * ws[e, i * G + o]
                for o in range(H):
                    z[b, o] = _gate(a[b, o], a[b, H + o])
            if i < L - 1:
                for b in range(nact):
                    for c in range(R):
                        sr[b, S + c] = res_b[i, c]
                _matacc(z, sr_w[i], sr, nact)
                for b in range(nact):
                    for c in range(R):
                        h[b, c] = (h[b, c] + sr[b, S + c]) * rs
            else:
                for b in range(nact):
                    for c in range(S):
                        skip[b, c] = sr[b, c]
                _matacc(z, skip_last, skip, nact)
        for b in range(nact):
            for c in range(S):
                skip[b, c] = max(skip[b, c] * ss, _ZERO)
                hid[b, c] = hid_b[c]
        _matacc(skip, hid_w, hid, nact)
        for b in range(nact):
            for c in range(S):
                hid[b, c] = max(hid[b, c], _ZERO)
            for c in range(C):
                lg[b, c] = out_b[c]
        _matacc(hid, out_w, lg, nact)
        for b in range(nact):
            if mode == MODE_TEACHER:
                for c in range(C):
                    out_logits[b, j, c] = lg[b, c]
                k = teacher[b, j]
            elif mode == MODE_CATEGORICAL:
                if argmax:
                    k = _argmax(lg[b], 0, C)
                else:
                    k = _categorical(lg[b], 0, C, uniforms[b, j, 0], 1.0 / temperature[b, j], cdf, etmp, ebits)
            else:  # logistic mixture: [logit_probs | means | log_scales]
                if argmax:
                    k = _argmax(lg[b], 0, mixtures)
                    x = min(max(np.float64(lg[b, mixtures + k]), -1.0), 1.0)
                else:
                    k = _categorical(lg[b], 0, mixtures, uniforms[b, j, 0], 1.0 / temperature[b, j], cdf, etmp, ebits)
                    log_s = max(np.float64(lg[b, 2 * mixtures + k]), log_scale_min)
                    v = min(max(uniforms[b, j, 1], 1e-5), 1.0 - 1e-5)
                    x = np.float64(lg[b, mixtures + k]) + math.exp(log_s) * temperature[b, j] * (
                        math.log(v) - math.log1p(-v)
                    )
                    x = min(max(x, -1.0), 1.0)
                out_audio[b, j] = x
                k = _mulaw_class(x, mu_law_channels)
            out_class[b, j] = k
            prev[b] = k
