"""ETA, EATA and RDumb against a straightforward implementation of the reference code, with
pixels as samples; plus the invariants that define them."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import perception
from tests.perception.test_adapt_nets import batches, confident_net

torch.set_num_threads(1)


def configured(model: nn.Module) -> tuple[nn.Module, list, list]:
    """The reference's configure_model/collect_params: BN on batch statistics, norm affine
    parameters train (GroupNorm too, as in the SAR repository's EATA)."""
    net = copy.deepcopy(model).eval().requires_grad_(False)
    params, names = [], []
    for nm, m in net.named_modules():
        if isinstance(m, nn.BatchNorm2d):
            m.train()
            m.track_running_stats = False
            m.running_mean = m.running_var = None
        if isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            for pn in ("weight", "bias"):
                getattr(m, pn).requires_grad_(True)
                params.append(getattr(m, pn))
                names.append(f"{nm}.{pn}")
    return net, params, names


def fisher_by_hand(net: nn.Module, names: list, source: list) -> dict:
    """main.py's Fisher loop: CE against the model's own argmax, grad² summed over batches,
    divided by the number of batches at the last one; anchors are the current values."""
    fishers: dict = {}
    for it, x in enumerate(source, start=1):
        out = net(x)
        F.cross_entropy(out, out.max(1)[1]).backward()
        for name, p in net.named_parameters():
            if p.grad is not None:
                f = p.grad.detach().clone() ** 2 + (fishers[name][0] if it > 1 else 0)
                if it == len(source):
                    f = f / it
                fishers[name] = [f, p.detach().clone()]
        net.zero_grad()
    return fishers


def reference_eta(model, xs, *, d_margin=0.4, fisher_alpha=0.0, source=(), reset_every=None):
    """forward_and_adapt_eata with every pixel a sample (the batch flattened to pixels)."""
    net, params, names = configured(model)
    fishers = fisher_by_hand(net, names, list(source)) if source else None
    opt = torch.optim.Adam(params, lr=1e-3, betas=(0.9, 0.999))
    state = (copy.deepcopy(net.state_dict()), copy.deepcopy(opt.state_dict()))
    probs, outs, kept_counts = None, [], []
    for t, x in enumerate(xs):
        if reset_every and t > 0 and t % reset_every == 0:  # CCC's rdumb: reset every K steps
            net.load_state_dict(state[0])
            opt.load_state_dict(state[1])
            probs = None
        out = net(x)
        c = out.shape[1]
        e_margin = 0.4 * math.log(c)
        flat = out.permute(0, 2, 3, 1).reshape(-1, c)
        ent = -(flat.softmax(1) * flat.log_softmax(1)).sum(1)
        ids1 = torch.where(ent < e_margin)
        ent = ent[ids1]
        if probs is not None:
            cos = F.cosine_similarity(probs.unsqueeze(0), flat[ids1].softmax(1), dim=1)
            ids2 = torch.where(torch.abs(cos) < d_margin)
            ent = ent[ids2]
            new = flat[ids1][ids2].softmax(1).detach()
            probs = probs if len(new) == 0 else 0.9 * probs + 0.1 * new.mean(0)
        else:
            new = flat[ids1].softmax(1).detach()
            probs = None if len(new) == 0 else new.mean(0)
        loss = (ent * (1 / torch.exp(ent.detach() - e_margin))).mean(0)
        if fishers is not None:
            for name, p in net.named_parameters():
                if name in fishers:
                    f, anchor = fishers[name]
                    loss = loss + fisher_alpha * (f * (p - anchor) ** 2).sum()
        if len(ent) != 0:
            loss.backward()
            opt.step()
        opt.zero_grad()
        outs.append(out.detach())
        kept_counts.append(len(ent))
    return outs, kept_counts, probs


def source_batches(n: int = 3) -> list:
    return batches(n, seed=11)


@pytest.mark.parametrize("norm", ["bn", "gn"])
def test_eta_matches_reference(norm):
    model, xs = confident_net(norm), batches(5)
    expected, kept, probs = reference_eta(model, xs)
    eta = perception.create_adapter("eta", model)
    got = [eta.predict(x) for x in xs]
    for e, o in zip(expected, got, strict=True):
        torch.testing.assert_close(o, e, rtol=0, atol=1e-5)
    assert 0 < eta.kept_pixels == sum(kept) < eta.reliable_pixels < 5 * 4 * 8 * 16
    torch.testing.assert_close(eta.average_probs, probs, rtol=0, atol=1e-6)
    assert not torch.allclose(perception.create_adapter("eta", model).predict(xs[-1]), got[-1])


@pytest.mark.parametrize("norm", ["bn", "gn"])
def test_eata_matches_reference_with_its_fisher_penalty(norm):
    # d_margin 1.5 keeps every reliable pixel, so every step updates and the penalty acts
    model, xs, src = confident_net(norm), batches(4), source_batches()
    expected, _, _ = reference_eta(model, xs, d_margin=1.5, fisher_alpha=2000.0, source=src)
    eata = perception.create_adapter(
        "eata", model, d_margin=1.5, fisher_alpha=2000.0, fisher_frames=12
    )
    eata.prepare_source(iter(src))
    got = [eata.predict(x) for x in xs]
    for e, o in zip(expected, got, strict=True):
        torch.testing.assert_close(o, e, rtol=0, atol=1e-5)
    assert eata.stats["backward_passes"] == 4
    eta_last = perception.create_adapter("eta", model, d_margin=1.5)
    for x in xs:
        last = eta_last.predict(x)
    assert not torch.allclose(last, got[-1], atol=1e-6)  # the penalty changed the updates


def test_fisher_penalty_equals_hand_computation():
    model, src = confident_net(), source_batches()
    eata = perception.create_adapter("eata", model, fisher_alpha=3.0, fisher_frames=12)
    eata.prepare_source(iter(src))
    net, _, names = configured(model)
    fishers = fisher_by_hand(net, names, src)
    assert set(eata.fisher) == set(fishers)
    for name, (f, anchor) in eata.fisher.items():
        torch.testing.assert_close(f, fishers[name][0], rtol=1e-5, atol=1e-9)
        assert torch.equal(anchor, fishers[name][1])
    assert float(eata.penalty().detach()) == 0.0  # at the source values
    with torch.no_grad():
        for p in eata.trained:
            p.add_(0.1)
    expected = sum(3.0 * (f * 0.1**2).sum() for f, _ in fishers.values())
    torch.testing.assert_close(eata.penalty(), expected, rtol=1e-4, atol=0)


def test_fisher_takes_exactly_fisher_frames_frames():
    model = confident_net()
    src = source_batches(4)  # 16 frames offered in batches of 4
    a = perception.create_adapter("eata", model, fisher_frames=6)
    a.prepare_source(iter(src))
    net, _, names = configured(model)
    expected = fisher_by_hand(net, names, [src[0], src[1][:2]])
    for name, (f, _) in a.fisher.items():
        torch.testing.assert_close(f, expected[name][0], rtol=1e-5, atol=1e-9)


def synthetic_logits(seed: int) -> torch.Tensor:
    """Logits whose confident pixels span every class (a random net's do not)."""
    return 4 * torch.randn((2, 5, 4, 8), generator=torch.Generator().manual_seed(seed))


def test_filtered_pixels_contribute_no_gradient():
    eta = perception.create_adapter("eta", confident_net())
    eta.filtered_entropy(synthetic_logits(0))  # now the moving average exists
    logits = synthetic_logits(1).requires_grad_(True)
    loss, keep = eta.filtered_entropy(logits)
    loss.backward()
    grad = logits.grad.abs().sum(1)  # (B, H, W)
    reliable = perception.softmax_entropy(logits.detach()) < 0.4 * math.log(5)
    assert keep.any() and (reliable & ~keep).any() and (~reliable).any()
    assert grad[~keep].max() == 0  # unreliable and redundant pixels: no gradient at all
    assert (grad[keep] > 0).all()


def test_redundancy_filter_moving_average():
    eta = perception.create_adapter("eta", confident_net())
    logits = [synthetic_logits(k) for k in range(3)]
    reliable = [perception.softmax_entropy(z) < 0.4 * math.log(5) for z in logits]
    probs = [z.softmax(1) for z in logits]
    _, keep = eta.filtered_entropy(logits[0])
    assert torch.equal(keep, reliable[0])  # no average yet: only the reliability filter
    avg = probs[0].permute(0, 2, 3, 1)[reliable[0]].mean(0)
    torch.testing.assert_close(eta.average_probs, avg, rtol=0, atol=1e-7)
    for z, p, r in zip(logits[1:], probs[1:], reliable[1:], strict=True):
        _, keep = eta.filtered_entropy(z)
        cos = F.cosine_similarity(avg.view(1, -1, 1, 1), p, dim=1)
        assert torch.equal(keep, r & (cos.abs() < 0.4)) and keep.any()
        avg = 0.9 * avg + 0.1 * p.permute(0, 2, 3, 1)[keep].mean(0)
        torch.testing.assert_close(eta.average_probs, avg, rtol=0, atol=1e-6)
    eta.reset()
    assert eta.average_probs is None  # reset clears it, as RDumb's does


def test_no_update_when_every_pixel_is_filtered():
    model = confident_net()
    eta = perception.create_adapter("eta", model, e_margin=0.0)  # nothing is reliable
    before = copy.deepcopy(eta.model.state_dict())
    for x in batches(2):
        eta.predict(x)
    assert eta.stats["backward_passes"] == 0 and eta.stats["steps"] == 2
    assert all(torch.equal(before[k], v) for k, v in eta.model.state_dict().items())


def test_eata_needs_source_data_before_the_stream():
    eata = perception.create_adapter("eata", confident_net())
    assert eata.needs_source_data and perception.adapter_info("eata").needs_source_data
    with pytest.raises(RuntimeError, match=r"eata needs source-domain images .*prepare_source"):
        eata.predict(batches(1)[0])
    with pytest.raises(ValueError, match="no source images"):
        eata.prepare_source(iter([]))


def test_rdumb_is_eta_reset_every_1000_steps():
    assert perception.adapter_info("rdumb").options["reset_every"] == 1000
    model, xs = confident_net(), batches(5)
    expected, _, _ = reference_eta(model, xs, reset_every=2)
    rdumb = perception.create_adapter("rdumb", model, reset_every=2)
    got = [rdumb.predict(x) for x in xs]
    for e, o in zip(expected, got, strict=True):
        torch.testing.assert_close(o, e, rtol=0, atol=1e-5)
    assert rdumb.stats["resets"] == 2  # after steps 2 and 4
    # right after a reset the model, optimiser and average are the source ones again
    fresh = perception.create_adapter("eta", model)
    torch.testing.assert_close(got[2], fresh.predict(xs[2]), rtol=0, atol=0)
