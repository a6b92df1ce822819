"""The unit prior: cached sampling equals recomputation, masking, prompts, durations, learning."""

import math

import pytest
import torch

from audio_vq.models.prior import KVCache, UnitPrior


def tiny(**kw):
    torch.manual_seed(0)
    return UnitPrior(codebook_size=12, dim=32, layers=2, heads=4, max_len=64, dropout=0.0, **kw).eval()


def test_kv_cache_gives_the_logits_of_recomputing_the_prefix():
    prior = tiny(num_speakers=3, duration_head=True)
    tokens = torch.cat([prior.start_tokens(torch.tensor([2, 0]), 2, "cpu"), torch.randint(0, 12, (2, 20))], dim=1)
    full = prior(tokens)
    cache = KVCache(2)
    first = prior(tokens[:, :5], cache)  # a prompt in one go, then one token at a time
    steps = [first.unit_logits] + [prior(tokens[:, i : i + 1], cache).unit_logits for i in range(5, tokens.shape[1])]
    torch.testing.assert_close(torch.cat(steps, dim=1), full.unit_logits, rtol=0, atol=1e-5)
    assert cache.length == tokens.shape[1]
    with pytest.raises(ValueError, match="positions for 64"):
        prior(torch.zeros(1, 65, dtype=torch.long))


def test_loss_ignores_padding_and_counts_bits():
    prior = tiny()
    units = torch.randint(0, 12, (2, 10))
    lengths = torch.tensor([10, 6])
    loss, metrics = prior.loss(units, lengths)
    padded = units.clone()
    padded[1, 6:] = 11 - padded[1, 6:]  # other values past row 1's end
    assert torch.equal(prior.loss(padded, lengths)[0], loss)
    assert float(metrics["bits_per_unit"]) == pytest.approx(float(loss.detach()) / math.log(2))
    assert loss.item() == pytest.approx(math.log(12), rel=0.1)  # untrained: about uniform


def test_a_prompted_sample_begins_with_the_prompt_and_is_seeded():
    prior = tiny(num_speakers=2)
    prompt = torch.tensor([[3, 3, 7, 1], [0, 5, 5, 2]])

    def draw(seed):
        return prior.sample(
            6, speakers=torch.tensor([1, 0]), prompt=prompt, generator=torch.Generator().manual_seed(seed)
        )[0]

    a, b = draw(1), draw(1)
    assert a.shape == (2, 10) and torch.equal(a[:, :4], prompt) and torch.equal(a, b)
    assert not torch.equal(draw(1), draw(2)) or not torch.equal(draw(2), draw(3))
    # top_k=1 is greedy: each unit is the argmax of recomputing the whole prefix
    greedy = prior.sample(5, prompt=prompt[:1], top_k=1)[0][0]
    for i in range(4, 9):
        start = prior.start_tokens(None, 1, "cpu")
        logits = prior(torch.cat([start, greedy[None, :i]], dim=1)).unit_logits[0, -1]
        assert int(greedy[i]) == int(logits.argmax())


def test_top_p_keeps_the_smallest_set_reaching_p():
    from audio_vq.models.prior import _draw

    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    drawn = {int(_draw(logits, 1.0, None, 0.7, torch.tensor([u]))) for u in torch.linspace(0, 1, 101).tolist()}
    assert drawn == {0, 1}  # 0.5 + 0.3 >= 0.7: the rest is never drawn
    assert int(_draw(logits, 1.0, None, None, torch.tensor([0.79]))) == 1  # inverse CDF: 0.5 < 0.79 <= 0.8
    assert int(_draw(logits, 1.0, None, None, torch.tensor([0.81]))) == 2


def test_a_rows_sample_does_not_depend_on_its_batch():
    prior = tiny(num_speakers=2)
    u = torch.rand(3, 7, 2, generator=torch.Generator().manual_seed(5))
    together = prior.sample(7, speakers=torch.tensor([0, 1, 1]), uniforms=u)[0]
    alone = prior.sample(7, speakers=torch.tensor([1]), uniforms=u[2:3])[0]
    assert torch.equal(together[2:3], alone)


def test_duration_head_samples_runs_in_range_and_trains():
    prior = tiny(duration_head=True, max_duration=5)
    units, durations = prior.sample(30, batch=3, generator=torch.Generator().manual_seed(0))
    assert units.shape == durations.shape == (3, 30)
    assert int(durations.min()) >= 1 and int(durations.max()) <= 5
    with pytest.raises(ValueError, match="durations"):
        prior.loss(units, torch.tensor([30, 30, 30]))
    loss, metrics = prior.loss(units, torch.tensor([30, 30, 30]), durations=durations)
    assert "duration_loss" in metrics and loss.item() > metrics["unit_loss"].item()


def test_it_learns_a_deterministic_sequence():
    torch.manual_seed(0)
    prior = UnitPrior(codebook_size=8, dim=32, layers=2, heads=2, max_len=40, dropout=0.0)
    seq = torch.tensor([0, 3, 1, 4, 1, 5, 2, 6] * 4)[None].repeat(4, 1)
    opt = torch.optim.Adam(prior.parameters(), lr=3e-3)
    for _ in range(150):
        loss, metrics = prior.loss(seq, torch.full((4,), seq.shape[1]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(metrics["bits_per_unit"]) < 0.3  # from 3 bits (uniform over 8)
    prior.eval()
    sample = prior.sample(16, prompt=seq[:1, :8], top_k=1)[0]
    assert torch.equal(sample[0], seq[0, :24])


def test_a_conditional_prior_learns_what_its_condition_tells_and_samples_given_it():
    """Units that are a function of their condition (VQ-VAE-2's bottom given the top): the
    conditional prior learns them far below the unconditional one, and samples them back."""
    gen = torch.Generator().manual_seed(0)

    def data(rows):
        condition = torch.randint(0, 8, (rows, 6), generator=gen).repeat_interleave(4, dim=1)  # held tops
        return (3 * condition + 1) % 8, condition

    (units, condition), (held_out, held_out_condition) = data(16), data(16)
    lengths = torch.full((16,), 24)
    bits = {}
    for size in (0, 8):
        torch.manual_seed(0)
        prior = UnitPrior(codebook_size=8, dim=32, layers=1, heads=2, max_len=32, dropout=0.0, condition_size=size)
        opt = torch.optim.Adam(prior.parameters(), lr=3e-3)
        for _ in range(80):
            loss, _ = prior.loss(units, lengths, condition=condition if size else None)
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():  # on other sequences: the unconditional prior can only guess each new top code
            bits[size] = float(
                prior.loss(held_out, lengths, condition=held_out_condition if size else None)[1]["bits_per_unit"]
            )
    assert bits[8] < 0.3 and bits[0] > 0.5, bits
    prior.eval()
    new = torch.randint(0, 8, (2, 10), generator=gen).repeat_interleave(4, dim=1)  # (2, 40): past max_len
    sampled, _ = prior.generate(40, batch=2, condition=new, top_k=1)
    assert torch.equal(sampled, (3 * new + 1) % 8)  # the sliding window keeps each unit with its condition
    with pytest.raises(ValueError, match="needs condition"):
        prior(torch.zeros(1, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="not conditional"):
        tiny()(torch.zeros(1, 3, dtype=torch.long), condition=torch.zeros(1, 3, dtype=torch.long))
