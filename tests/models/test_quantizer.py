"""Tests for audio_vq.models.quantizer: straight-through gradients, loss terms, EMA, k-means init,
dead-code restarts, masks, fp32 under autocast, lookup round trips, metrics, the Gumbel quantizer,
and identical codebooks across two gloo processes."""

from __future__ import annotations

import math
import os
import traceback

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from audio_vq.models import codebook_sync
from audio_vq.models.kmeans import kmeans, nearest
from audio_vq.models.quantizer import GumbelQuantizer, QuantizerOutput, VectorQuantizer

D, K = 8, 16
DIST_TIMEOUT_S = 120


def _z(batch=2, frames=20, dim=D, seed=0, scale=1.0):
    return scale * torch.randn(batch, dim, frames, generator=torch.Generator().manual_seed(seed))


def _blobs(centres: torch.Tensor, per_blob: int, spread: float, seed: int = 0) -> torch.Tensor:
    """(1, d, n_blobs * per_blob): points around each centre (n_blobs, d), blobs interleaved."""
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(per_blob * len(centres), centres.shape[1], generator=g)
    points = centres.repeat(per_blob, 1) + spread * noise
    return points.t().unsqueeze(0)


def _set_codebook(q: VectorQuantizer, codebook: torch.Tensor) -> None:
    with torch.no_grad():
        q.embedding.copy_(codebook)
        if q.ema:
            q.ema_embed_sum.copy_(codebook)
            q.ema_cluster_size.fill_(1.0)


# -- straight-through estimator and the two loss terms ------------------------------------------


def test_straight_through_and_loss_terms_move_the_right_tensors():
    torch.manual_seed(0)
    q = VectorQuantizer(D, K).train()
    z = _z().requires_grad_()
    out = q(z)
    codes = nearest(z.detach().transpose(1, 2).reshape(-1, D), q.embedding.detach()).view(2, 20)
    assert torch.equal(out.codes, codes[:, None])  # (B, Q = 1, T)
    e = q.embedding.detach()[codes].transpose(1, 2)  # (B, D, T)
    assert torch.equal(out.quantized, e)  # the value is the code vector itself

    # reconstruction part: dL/dz = dL/dz_q exactly, and the codebook gets nothing from it
    upstream = torch.randn_like(out.quantized)
    grad_z, grad_e = torch.autograd.grad(
        out.quantized, [z, q.embedding], upstream, retain_graph=True, allow_unused=True, materialize_grads=True
    )
    assert torch.equal(grad_z, upstream)
    assert torch.count_nonzero(grad_e) == 0

    # codebook loss ||sg[z] - e||^2 moves only the codebook
    grad_z, grad_e = torch.autograd.grad(
        out.codebook_loss, [z, q.embedding], retain_graph=True, allow_unused=True, materialize_grads=True
    )
    assert torch.count_nonzero(grad_z) == 0
    expected = torch.zeros(K, D).index_add_(
        0, codes.reshape(-1), 2 * (e - z.detach()).transpose(1, 2).reshape(-1, D) / z.numel()
    )
    torch.testing.assert_close(grad_e, expected)

    # commitment loss ||z - sg[e]||^2 moves only the encoder output
    grad_z, grad_e = torch.autograd.grad(
        out.commitment_loss, [z, q.embedding], retain_graph=True, allow_unused=True, materialize_grads=True
    )
    assert torch.count_nonzero(grad_e) == 0
    torch.testing.assert_close(grad_z, 2 * (z.detach() - e) / z.numel())

    torch.testing.assert_close(out.codebook_loss, F.mse_loss(z.detach(), e))
    torch.testing.assert_close(out.loss, out.codebook_loss + 0.25 * out.commitment_loss)


# -- EMA ----------------------------------------------------------------------------------------


def test_ema_update_matches_hand_computation():
    decay, eps = 0.9, 0.1  # a large epsilon, so that leaving out the smoothing shows
    q = VectorQuantizer(2, 3, ema=True, ema_decay=decay, ema_epsilon=eps).train()
    codebook = torch.tensor([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]])
    _set_codebook(q, codebook)
    x = torch.tensor([[0.5, 0.0], [-0.5, 1.0], [4.0, 1.0], [5.0, -1.0]])  # -> codes 0, 0, 1, 1
    out = q(x.t().unsqueeze(0))
    assert out.codes.tolist() == [[[0, 0, 1, 1]]]
    assert out.codebook_loss.item() == 0.0  # EMA replaces the codebook loss
    # commitment loss on the codebook *before* the update
    torch.testing.assert_close(out.commitment_loss, ((x - codebook[[0, 0, 1, 1]]) ** 2).mean())

    counts = torch.tensor([2.0, 2.0, 0.0])
    sums = torch.tensor([[0.0, 1.0], [9.0, 0.0], [0.0, 0.0]])
    size = decay * torch.ones(3) + (1 - decay) * counts  # [1.1, 1.1, 0.9]
    embed_sum = decay * codebook + (1 - decay) * sums
    n = size.sum()
    smoothed = (size + eps) / (n + 3 * eps) * n
    torch.testing.assert_close(q.ema_cluster_size, size)
    torch.testing.assert_close(q.ema_embed_sum, embed_sum)
    torch.testing.assert_close(q.embedding, embed_sum / smoothed[:, None])
    assert not torch.equal(q.embedding, codebook)

    before = q.embedding.clone()
    q.eval()(x.t().unsqueeze(0))  # no update outside training
    assert torch.equal(q.embedding, before)


# -- k-means initialisation ---------------------------------------------------------------------


CENTRES = torch.tensor([[6.0, 0.0], [-6.0, 0.0], [0.0, 6.0], [0.0, -6.0], [6.0, 6.0], [-6.0, -6.0]])


@pytest.mark.parametrize("codebook_size", [len(CENTRES), 12])
@pytest.mark.parametrize("ema", [False, True])
def test_kmeans_init_puts_a_code_on_every_cluster(codebook_size, ema):
    torch.manual_seed(1)
    q = VectorQuantizer(2, codebook_size, kmeans_init=True, ema=ema).train()
    assert not q.initialized
    z = _blobs(CENTRES, per_blob=40, spread=0.1)
    before = q.embedding.detach().clone()
    q.eval()(z)  # eval mode never initialises
    assert not q.initialized and torch.equal(q.embedding, before)
    out = q.train()(z)
    assert q.initialized
    nearest_code = torch.cdist(CENTRES, q.embedding.detach()).min(1).values
    assert (nearest_code < 0.2).all(), nearest_code
    assert out.commitment_loss < 0.05  # the first batch is already quantized with the new codes


def test_kmeans_init_is_not_repeated_after_loading_a_checkpoint():
    torch.manual_seed(0)
    trained = VectorQuantizer(2, 6, kmeans_init=True).train()
    trained(_blobs(CENTRES, per_blob=10, spread=0.1))
    fresh = VectorQuantizer(2, 6, kmeans_init=True).train()
    fresh.load_state_dict(trained.state_dict())
    fresh(_blobs(CENTRES + 50.0, per_blob=10, spread=0.1))  # far-away data would move a re-init
    assert torch.equal(fresh.embedding, trained.embedding)


def test_spherical_kmeans_gives_unit_centroids():
    x = F.normalize(_blobs(CENTRES, per_blob=20, spread=0.5)[0].t(), dim=1)
    centroids, counts = kmeans(x, 4, iters=5, cosine=True)
    torch.testing.assert_close(centroids.norm(dim=1), torch.ones(4))
    assert counts.sum() == len(x)


# -- dead-code restarts -------------------------------------------------------------------------


@pytest.mark.parametrize("ema", [False, True])
def test_dead_codes_are_restarted_near_the_data(ema):
    torch.manual_seed(0)
    restart_after = 3
    q = VectorQuantizer(2, 8, ema=ema, restart_after=restart_after).train()
    live = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]])
    _set_codebook(q, torch.cat([live, torch.full((4, 2), 100.0)]))  # codes 4-7 never win
    z = _blobs(live, per_blob=10, spread=0.05).requires_grad_()
    data = z[0].t().detach()
    for step in range(1, restart_after + 1):
        out = q(z)
        (out.loss + out.quantized.sum()).backward()  # in-place restarts must not break backward
        if step < restart_after:
            assert out.restarted == 0 and out.dead_codes == 0
            assert (q.embedding[4:] > 99.0).all()  # still far off (EMA smoothing moves them a hair)
            assert q.unused_steps[4:].tolist() == [step] * 4 and q.unused_steps[:4].tolist() == [0] * 4
    assert out.restarted == 4 and out.dead_codes == 4 and q.restarts == 4
    assert q.unused_steps.tolist() == [0] * 8
    # each restarted code is one of the batch's encoder outputs
    restarted = q.embedding.detach()[4:]
    assert (restarted[:, None, :] == data[None, :, :]).all(-1).any(1).all()
    assert len(torch.unique(restarted, dim=0)) == 4  # four different vectors (drawn without replacement)
    assert (torch.cdist(q.embedding.detach()[:4], live).diagonal() < 0.1).all()  # live codes stay
    if ema:
        assert q.ema_cluster_size[4:].tolist() == [1.0] * 4
        torch.testing.assert_close(q.ema_embed_sum[4:], q.embedding[4:])
    restarts = q.restarts.clone()
    q.eval()(z)
    assert torch.equal(q.restarts, restarts)  # nothing happens in eval mode


def test_no_collectives_without_a_process_group(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("collective called outside torch.distributed")

    monkeypatch.setattr(dist, "all_reduce", forbidden)
    monkeypatch.setattr(dist, "broadcast", forbidden)
    q = VectorQuantizer(D, K, ema=True, kmeans_init=True, restart_after=1).train()
    for seed in range(3):
        q(_z(seed=seed))


# -- two gloo processes -------------------------------------------------------------------------


def _dist_worker(rank: int, world_size: int, init_file: str, out_dir: str) -> None:
    try:
        from datetime import timedelta

        torch.set_num_threads(1)
        dist.init_process_group(
            "gloo",
            init_method=f"file://{init_file}",
            rank=rank,
            world_size=world_size,
            timeout=timedelta(seconds=DIST_TIMEOUT_S),
        )
        assert codebook_sync.is_distributed()
        torch.manual_seed(0)  # identical initial weights, as DDP's broadcast at wrap time gives
        ema = VectorQuantizer(4, 16, ema=True, kmeans_init=True, restart_after=2).train()
        plain = VectorQuantizer(4, 16, kmeans_init=True, restart_after=2, cosine=True).train()
        torch.manual_seed(1000 + rank)  # from here on each rank draws different data and noise
        codes = {}
        for step in range(6):
            # step 0 spreads data (k-means init); later steps crowd each rank into one corner so
            # many codes go unused and get restarted; the corners differ between ranks
            centre = torch.zeros(4) if step == 0 else torch.full((4,), 3.0 if rank == 0 else -3.0)
            spread = 2.0 if step == 0 else 0.3
            z = (centre + spread * torch.randn(3, 50, 4)).transpose(1, 2)
            mask = torch.arange(50) < torch.tensor([50, 30 + 10 * rank, 20]).unsqueeze(1)
            for name, q in (("ema", ema), ("plain", plain)):
                out = q(z, mask=mask)
                codes.setdefault(name, []).append(out.codes[:, 0][mask])
        torch.save(
            {
                "ema": ema.state_dict(),
                "plain": plain.state_dict(),
                "codes": {name: torch.cat(c) for name, c in codes.items()},
            },
            os.path.join(out_dir, f"rank{rank}.pt"),
        )
        dist.destroy_process_group()
    except BaseException:
        with open(os.path.join(out_dir, f"rank{rank}.err"), "w") as f:
            f.write(traceback.format_exc())
        raise


def test_ranks_end_with_identical_codebooks(tmp_path):
    world_size = 2
    ctx = mp.get_context("spawn")
    procs = [
        ctx.Process(target=_dist_worker, args=(rank, world_size, str(tmp_path / "init"), str(tmp_path)))
        for rank in range(world_size)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(DIST_TIMEOUT_S + 30)
    for p in procs:
        if p.is_alive():
            p.kill()
    errors = [f.read_text() for f in tmp_path.glob("*.err")]
    assert not errors, "\n".join(errors)
    assert [p.exitcode for p in procs] == [0, 0]
    states = [torch.load(tmp_path / f"rank{rank}.pt") for rank in range(world_size)]
    for name in ("ema", "plain"):
        a, b = states[0][name], states[1][name]
        assert a.keys() == b.keys()
        for key in a:
            assert torch.equal(a[key], b[key]), f"{name}.{key} differs between ranks"
        assert a["initialized"] and a["restarts"] > 0
    # the ranks really saw different data: their codes differ, so only the all-reduce and the
    # broadcasts can have kept the codebooks (and the restart decisions) equal
    for name in ("ema", "plain"):
        c0, c1 = states[0]["codes"][name], states[1]["codes"][name]
        assert c0.shape != c1.shape or not torch.equal(c0, c1)


# -- lookup, autocast, masks ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "options", [{}, {"cosine": True}, {"lookup_dim": 3}, {"ema": True}, {"cosine": True, "lookup_dim": 3}]
)
def test_lookup_reproduces_forward(options):
    torch.manual_seed(0)
    q = VectorQuantizer(D, K, **options)
    z = _z(batch=3, frames=17)
    with torch.no_grad():
        out = q.eval()(z)
    assert out.quantized.shape == (3, D, 17) and out.codes.shape == (3, 1, 17)
    assert out.codes.dtype == torch.long
    assert torch.equal(q.lookup(out.codes), out.quantized)
    assert q.codebook.shape == (K, options.get("lookup_dim", D))
    if options.get("cosine"):
        torch.testing.assert_close(q.codebook.norm(dim=1), torch.ones(K))
    # in training, with gradients, the straight-through value is still the code vector bit for bit
    # (not with EMA: the step's update moves the codebook after forward picked its vectors)
    if not options.get("ema"):
        train_out = q.train()(z.clone().requires_grad_())
        assert torch.equal(q.lookup(train_out.codes), train_out.quantized)


@pytest.mark.parametrize("options", [{}, {"lookup_dim": 16}])
def test_fp32_inside_bf16_autocast(options):
    torch.manual_seed(0)
    q = VectorQuantizer(64, 512, **options).eval()
    z = _z(batch=4, frames=100, dim=64).to(torch.bfloat16)
    with torch.no_grad():
        reference = q(z.float())
    zg = z.clone().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = q(zg)
        assert torch.mm(torch.ones(2, 2), torch.ones(2, 2)).dtype == torch.bfloat16  # autocast is on
    assert out.codebook_loss.dtype == torch.float32 and out.commitment_loss.dtype == torch.float32
    assert out.loss.dtype == torch.float32
    assert out.quantized.dtype == torch.bfloat16  # cast back to the input's dtype
    assert torch.equal(out.codes, reference.codes)
    # the check has teeth: a search in bf16 picks other codes for some frames
    x = z.float().transpose(1, 2).reshape(-1, 64)
    if q.in_proj is None:
        bf16_codes = nearest(x.bfloat16(), q.codebook.detach().bfloat16())
        assert not torch.equal(bf16_codes, reference.codes.reshape(-1))
    torch.testing.assert_close(out.loss, reference.loss)
    (out.quantized.float().sum() + out.loss).backward()
    assert zg.grad.dtype == torch.bfloat16


def test_gumbel_fp32_inside_bf16_autocast():
    torch.manual_seed(0)
    q = GumbelQuantizer(64, 512).eval()
    z = _z(batch=2, frames=50, dim=64).to(torch.bfloat16)
    with torch.no_grad():
        reference = q(z.float())
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = q(z)
    assert out.quantized.dtype == torch.bfloat16 and out.diversity_loss.dtype == torch.float32
    assert torch.equal(out.codes, reference.codes)
    torch.testing.assert_close(out.loss, reference.loss)


@pytest.mark.parametrize("options", [{"ema": True, "kmeans_init": True}, {"restart_after": 1}, {}])
def test_padding_changes_nothing(options):
    lengths = [13, 20]
    z = _z(batch=2, frames=20, seed=3)
    padded = z.clone()
    padded[0, :, lengths[0] :] = 1e6  # garbage in the padding must not leak anywhere
    mask = torch.arange(20) < torch.tensor(lengths).unsqueeze(1)
    joined = torch.cat([z[0, :, : lengths[0]], z[1, :, : lengths[1]]], dim=1).unsqueeze(0)  # (1, D, 33)

    torch.manual_seed(0)
    a = VectorQuantizer(D, 8, **options).train()
    torch.manual_seed(0)
    b = VectorQuantizer(D, 8, **options).train()
    for _ in range(2):
        torch.manual_seed(5)
        out_a = a(padded, mask=mask)
        torch.manual_seed(5)
        out_b = b(joined)
        for name in ("loss", "codebook_loss", "commitment_loss", "perplexity", "usage", "dead_codes", "restarted"):
            torch.testing.assert_close(getattr(out_a, name), getattr(out_b, name), msg=name)
        assert torch.equal(out_a.codes[:, 0][mask], out_b.codes[0, 0])
    for key, value in a.state_dict().items():
        torch.testing.assert_close(value, b.state_dict()[key], msg=key)


# -- metrics --------------------------------------------------------------------------------------


def test_perplexity_usage_and_dead_codes():
    q = VectorQuantizer(2, 8).eval()
    codebook = torch.tensor([[float(i), 0.0] for i in range(8)])
    _set_codebook(q, codebook)
    uniform = codebook[[0, 1, 2, 3] * 5].t().unsqueeze(0)  # 4 codes, 5 frames each
    out = q(uniform)
    torch.testing.assert_close(out.perplexity, torch.tensor(4.0))
    torch.testing.assert_close(out.usage, torch.tensor(0.5))
    assert out.dead_codes == 4 and out.restarted == 0
    assert out.loss == 0.0

    skewed = codebook[[0, 0, 0, 5]].t().unsqueeze(0)
    out = q(skewed)
    p = torch.tensor([0.75, 0.25])
    torch.testing.assert_close(out.perplexity, torch.exp(-(p * p.log()).sum()))
    torch.testing.assert_close(out.usage, torch.tensor(2 / 8))
    metrics = out.metrics()
    assert set(metrics) == {
        "loss",
        "codebook_loss",
        "commitment_loss",
        "diversity_loss",
        "perplexity",
        "usage",
        "dead_codes",
        "restarted",
    }


def test_bad_arguments_and_shapes_fail_clearly():
    with pytest.raises(ValueError, match="ema_decay"):
        VectorQuantizer(D, K, ema_decay=1.0)
    with pytest.raises(ValueError, match="restart_after"):
        VectorQuantizer(D, K, restart_after=0)
    q = VectorQuantizer(D, K)
    with pytest.raises(ValueError, match=r"\(B, 8, T\)"):
        q(torch.randn(2, D + 1, 5))
    with pytest.raises(ValueError, match="mask"):
        q(torch.randn(2, D, 5), mask=torch.ones(2, 4, dtype=torch.bool))
    assert "restart_after=3" in repr(VectorQuantizer(D, K, restart_after=3))


# -- Gumbel quantizer -----------------------------------------------------------------------------


def test_gumbel_quantizer():
    torch.manual_seed(0)
    q = GumbelQuantizer(D, K, temperature=2.0, temperature_decay=0.5, min_temperature=0.75)
    assert q.codebook.shape == (K, D) and q.codebook_size == K and q.dim == D
    z = _z(batch=3, frames=11).requires_grad_()
    out = q.train()(z)
    assert isinstance(out, QuantizerOutput)
    assert out.quantized.shape == (3, D, 11) and out.codes.shape == (3, 1, 11)
    # hard one-hot in the forward pass: the value is exactly a code vector...
    torch.testing.assert_close(out.quantized, q.embedding.detach()[out.codes[:, 0]].transpose(1, 2))
    # ...and the soft sample's gradient reaches the logits (straight-through)
    out.quantized.pow(2).sum().backward()
    assert q.logits.weight.grad.abs().sum() > 0 and z.grad.abs().sum() > 0
    assert q.temperature.item() == 1.0  # 2.0 * 0.5
    q(z)
    assert q.temperature.item() == 0.75  # clamped at min_temperature
    q.set_temperature(1.5)
    assert q.temperature.item() == 1.5

    with torch.no_grad():
        q.eval()
        out = q(z)
        logits = q.logits(z.transpose(1, 2))
    assert torch.equal(out.codes[:, 0], logits.argmax(-1))  # eval: argmax, no noise
    assert torch.equal(q.lookup(out.codes), out.quantized)
    assert q.temperature.item() == 1.5  # eval does not anneal
    probs = logits.softmax(-1).reshape(-1, K).mean(0)
    expected = (K - torch.exp(-(probs * probs.log()).sum())) / K
    torch.testing.assert_close(out.diversity_loss, expected)
    torch.testing.assert_close(out.loss, 0.1 * expected)
    assert out.codebook_loss == 0 and out.commitment_loss == 0


def test_gumbel_diversity_loss_is_zero_for_uniform_logits_and_respects_masks():
    q = GumbelQuantizer(D, K).eval()
    with torch.no_grad():
        q.logits.weight.zero_()
        q.logits.bias.zero_()
    out = q(_z())
    torch.testing.assert_close(out.diversity_loss, torch.tensor(0.0), atol=1e-6, rtol=0)
    with torch.no_grad():
        q.logits.bias[3] = 50.0  # every frame on code 3
    out = q(_z())
    torch.testing.assert_close(out.diversity_loss, torch.tensor((K - 1) / K))
    assert out.usage == 1 / K and out.dead_codes == K - 1
    torch.testing.assert_close(out.perplexity, torch.tensor(1.0))
    mask = torch.zeros(2, 20, dtype=torch.bool)
    mask[:, :5] = True
    masked = q(_z() * torch.where(mask, 1.0, float("nan")).unsqueeze(1), mask=mask)
    assert torch.isfinite(masked.loss) and masked.perplexity == 1.0


def test_diversity_loss_reaches_logits_in_training():
    torch.manual_seed(0)
    q = GumbelQuantizer(D, K).train()
    q(_z()).loss.backward()
    assert q.logits.weight.grad.abs().sum() > 0
    assert math.isclose(q.temperature.item(), 2.0 * 0.999995, rel_tol=1e-6)
