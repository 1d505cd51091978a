"""DUA and MEMO, the two augmentation-based single-frame methods, against straightforward
implementations of their reference code; the momentum schedule, episodic reset, the marginal."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

import perception
from perception._methods_memo import marginal_entropy
from tests.perception.test_adapt_nets import TinyNet, batches, confident_net

torch.set_num_threads(1)


# ----------------------------------------------------------------------------- DUA
def reference_dua(model, xs, *, views=8, samples=80, seed=0):
    net = copy.deepcopy(model).eval()
    aug = perception.DenseAugment(flip=0.5, crop=(0.875, 1.0))
    g = torch.Generator().manual_seed(seed)
    mom_pre, adapted, outs = 0.1, 0, []
    with torch.no_grad():
        for x in xs:
            for img in x:
                if adapted < samples:
                    mom_new = mom_pre * 0.94
                    for m in net.modules():
                        if isinstance(m, nn.BatchNorm2d):
                            m.train()
                            m.momentum = mom_new + 0.005
                    mom_pre = mom_new
                    v = aug.sample(views, *img.shape[-2:], g)
                    net(perception.augment(img.expand(views, -1, -1, -1), v, g))
                    net.eval()
                    adapted += 1
                outs.append(net(img[None]))
    return torch.cat(outs), net


def test_dua_matches_reference():
    model, xs = TinyNet(), batches(3)
    expected, net = reference_dua(model, xs, samples=10)
    dua = perception.create_adapter("dua", model, views=8, samples=10)
    got = torch.cat([dua.predict(x) for x in xs])
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    for k, v in net.state_dict().items():
        torch.testing.assert_close(dua.model.state_dict()[k], v, rtol=0, atol=1e-6)
    source = perception.create_adapter("source", model).predict(xs[-1])
    assert not torch.allclose(got[-1], source[-1])
    assert dua.optimizer is None and dua.stats["backward_passes"] == 0
    # 10 frames adapted (a copies pass and a prediction each), then one pass for the last 2
    assert dua.stats["forward_passes"] == 2 * 10 + 1
    assert dua.stats["image_forwards"] == 10 * (8 + 1) + 2


def test_decaying_momentum_schedule_and_running_statistics():
    model = TinyNet()
    dua = perception.create_adapter("dua", model, views=4, samples=3)
    frames = batches(1, size=5)[0]
    for k, frame in enumerate(frames[:3], start=1):
        before = dua.model.norm1.running_mean.clone(), dua.model.norm1.running_var.clone()
        g = copy.deepcopy(dua.generator)  # the draws the next update will make
        dua.predict(frame[None])
        m = 0.1 * 0.94**k + 0.005
        assert dua.model.norm1.momentum == pytest.approx(m)
        views = dua.copies.sample(4, 8, 16, g)
        h = dua.model.conv1(perception.augment(frame.expand(4, -1, -1, -1), views, g)).detach()
        var, mean = torch.var_mean(h, dim=(0, 2, 3), correction=1)  # PyTorch: unbiased
        torch.testing.assert_close(dua.model.norm1.running_mean, (1 - m) * before[0] + m * mean)
        torch.testing.assert_close(dua.model.norm1.running_var, (1 - m) * before[1] + m * var)
    frozen = copy.deepcopy(dua.model.state_dict())
    dua.predict(frames[3:])  # past `samples`: statistics stay
    assert all(torch.equal(v, frozen[k]) for k, v in dua.model.state_dict().items())
    dua.reset()
    assert dua.momentum_now == 0.1 and dua.frames_adapted == 0


def test_dua_needs_batchnorm():
    with pytest.raises(ValueError, match=r"^dua: the model has no BatchNorm layers \(GroupNorm\)"):
        perception.create_adapter("dua", TinyNet(norm="gn"))


# ----------------------------------------------------------------------------- MEMO
class PriorBN(nn.Module):
    """BN mixing source and (detached) batch statistics with λ = N / (N + 1)."""

    def __init__(self, bn: nn.BatchNorm2d, prior: float) -> None:
        super().__init__()
        self.bn, self.lam = bn, prior / (prior + 1)

    def forward(self, h):
        mean = h.detach().mean((0, 2, 3))
        var = h.detach().var((0, 2, 3), unbiased=False)
        mean = self.lam * self.bn.running_mean + (1 - self.lam) * mean
        var = self.lam * self.bn.running_var + (1 - self.lam) * var
        h = (h - mean.view(1, -1, 1, 1)) / torch.sqrt(var.view(1, -1, 1, 1) + self.bn.eps)
        return h * self.bn.weight.view(1, -1, 1, 1) + self.bn.bias.view(1, -1, 1, 1)


def reference_memo(model, xs, *, views=6, lr=0.05, prior=9.0, seed=0, episodic=True):
    aug = perception.DenseAugment(
        flip=0.5, crop=(math.sqrt(0.3), 1.0),
        **{k: v for k, v in perception.COTTA_JITTER.items() if k != "noise"},
    )  # fmt: skip
    g = torch.Generator().manual_seed(seed)

    def fresh():
        net = copy.deepcopy(model).eval()
        if isinstance(net.norm1, nn.BatchNorm2d):
            net.norm1, net.norm2 = PriorBN(net.norm1, prior), PriorBN(net.norm2, prior)
        net.requires_grad_(True)
        return net, torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)

    net, opt = fresh()
    outs = []
    for x in xs:
        for img in x:
            if episodic:
                net, opt = fresh()
            v = aug.sample(views, *img.shape[-2:], g)
            out = net(perception.augment(img.expand(views, -1, -1, -1), v))
            back, covered = perception.restore(out, v, img.shape[-2:])
            pbar = (back.softmax(1) * covered).sum(0) / covered.sum(0)  # per-pixel marginal
            seen = covered.sum(0)[0] > 0
            entropy = -(pbar * torch.log(pbar)).sum(0)
            opt.zero_grad()
            entropy[seen].mean().backward()
            opt.step()
            with torch.no_grad():
                outs.append(net(img[None]))
    return torch.cat(outs)


@pytest.mark.parametrize(("norm", "episodic"), [("bn", True), ("gn", True), ("bn", False)])
def test_memo_matches_reference(norm, episodic):
    model, xs = confident_net(norm), batches(2, size=3)
    expected = reference_memo(model, xs, episodic=episodic)
    memo = perception.create_adapter("memo", model, lr=0.05, episodic=episodic)
    got = torch.cat([memo.predict(x) for x in xs])
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    source = perception.create_adapter("memo", model, lr=1e-12)  # same BN prior, no step
    assert not torch.allclose(got[:3], source.predict(xs[0]), atol=1e-4)
    s = memo.stats
    assert s["image_forwards"] == 6 * 7 and s["image_backwards"] == 6 * 6
    assert s["resets"] == (6 if episodic else 0)  # before every frame when episodic


def test_episodic_frames_do_not_influence_each_other():
    model, x = confident_net(), batches(1, size=2)[0]
    together = perception.create_adapter("memo", model, lr=0.05)
    out = together.predict(x)
    alone = perception.create_adapter("memo", model, lr=0.05)
    alone.predict(x[:1])  # same draws for frame 0, then frame 1 from the source again
    torch.testing.assert_close(alone.predict(x[1:]), out[1:], rtol=0, atol=0)


def test_marginal_entropy_over_views():
    g = torch.Generator().manual_seed(4)
    logits = 3 * torch.randn((4, 5, 6, 8), generator=g)
    covered = (torch.rand((4, 1, 6, 8), generator=g) < 0.7).float()
    covered[:, :, 0, 0] = 0  # a pixel no view shows
    p = logits.softmax(1)
    pbar = (p * covered).sum(0) / covered.sum(0).clamp_min(1)
    seen = covered.sum(0)[0] > 0
    h = -(pbar * torch.log(pbar.clamp_min(1e-30))).sum(0)
    torch.testing.assert_close(marginal_entropy(logits, covered), h[seen].mean())
    # the marginal, not the mean of per-view entropies
    per_view = perception.softmax_entropy(logits).mean()
    assert marginal_entropy(logits, torch.ones_like(covered)) > per_view - 1e-6


def test_memo_defaults_follow_the_segmentation_config():
    o = perception.adapter_info("memo").options
    assert (o["views"], o["optimizer"], o["lr"], o["weight_decay"], o["episodic"]) == (
        6, "sgd", 2.5e-4, 5e-4, True,
    )  # fmt: skip
    assert o["prior_strength"] == 9.0 and math.isclose(9 / (9 + 1), 0.9)
