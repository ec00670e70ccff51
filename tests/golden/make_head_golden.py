"""Golden values for the training head: margin logits, Partial FC (sample_rate 1, one rank),
SGD / AdamW steps and the poly LR schedule, computed with PyTorch 1.13.

Run with /usr/bin/python3 (the one with torch) from the repository root:
    /usr/bin/python3 tests/golden/make_head_golden.py
It writes tests/fixtures/head_golden.json.
"""
import json
import math
import os

import torch
import torch.nn.functional as F

torch.manual_seed(7)
torch.set_default_dtype(torch.float32)


def combined_margin(logits, labels, s, m1, m2, m3, filter_threshold=0.0, straight_through=False):
    """arcface_torch CombinedMarginLoss (the version with the true gradient and the
    θ + m2 > π fallback); m1 != 1 and combined margins follow s·(cos(m1·θ + m2) − m3)."""
    index = torch.where(labels != -1)[0]
    if filter_threshold > 0:
        with torch.no_grad():
            dirty = (logits > filter_threshold).float()
            mask = torch.ones([index.size(0), logits.size(1)])
            mask.scatter_(1, labels[index].view(-1, 1), 0)
            dirty[index] *= mask
            keep = 1 - dirty
        logits = keep * logits
    logits = logits.clone()
    target = logits[index, labels[index]]
    if straight_through:
        with torch.no_grad():
            fixed = combined_target(target.detach(), m1, m2, m3)
        final = target + (fixed - target.detach())
    else:
        final = combined_target(target, m1, m2, m3)
    logits[index, labels[index]] = final
    return logits * s


def combined_target(c, m1, m2, m3):
    if m1 == 1.0:
        theta = math.cos(math.pi - m2)
        sinmm = math.sin(math.pi - m2) * m2
        sin_t = torch.sqrt(1.0 - c * c)
        cos_tm = c * math.cos(m2) - sin_t * math.sin(m2)
        return torch.where(c > theta, cos_tm, c - sinmm) - m3
    limit = (math.pi - m2) / m1
    t = torch.acos(c)
    main = torch.cos(m1 * t + m2) - m3
    if limit >= math.pi:
        return main
    return torch.where(t < limit, main, c - math.cos(limit) - 1.0 - m3)


class DistCrossEntropy(torch.autograd.Function):
    """DistCrossEntropyFunc for one rank: its backward is (softmax − one-hot)/B even where
    the clamp at 1e-30 held (autograd through clamp_min would give 0 there)."""

    @staticmethod
    def forward(ctx, logits, labels):
        p = torch.softmax(logits, dim=1)
        ctx.save_for_backward(p, labels)
        target = p[torch.arange(logits.size(0)), labels]
        return -(target.clamp_min(1e-30).log()).mean()

    @staticmethod
    def backward(ctx, grad):
        p, labels = ctx.saved_tensors
        g = p.clone()
        g[torch.arange(p.size(0)), labels] -= 1
        return g / p.size(0) * grad, None


def dist_cross_entropy(logits, labels):
    return DistCrossEntropy.apply(logits, labels)


def t2l(t):
    return [float(v) for v in t.detach().reshape(-1).tolist()]


out = {}

# --- margins on a small cosine matrix ------------------------------------------------------
cos = torch.tensor([[0.5, 0.2, -0.3, 0.9],
                    [-0.95, 0.1, 0.4, 0.45],
                    [0.3, 0.99, -0.2, 0.0],
                    [0.1, 0.2, 0.3, 0.4]])
labels = torch.tensor([0, 0, 1, -1])
margins = []
for name, s, m, thr, st in [
    ("arcface", 64.0, (1.0, 0.5, 0.0), 0.0, False),
    ("arcface_st", 64.0, (1.0, 0.5, 0.0), 0.0, True),
    ("cosface", 64.0, (1.0, 0.0, 0.4), 0.0, False),
    ("combined", 64.0, (1.0, 0.3, 0.2), 0.0, False),
    ("sphere", 64.0, (1.35, 0.0, 0.0), 0.0, False),
    ("arcface_filter", 32.0, (1.0, 0.5, 0.0), 0.35, False),
]:
    c = cos.clone().requires_grad_(True)
    z = combined_margin(c, labels, s, *m, filter_threshold=thr, straight_through=st)
    upstream = torch.linspace(-1, 1, z.numel()).reshape(z.shape)
    (z * upstream).sum().backward()
    margins.append({"name": name, "s": s, "m": list(m), "filter": thr, "straight_through": st,
                    "logits": t2l(z), "upstream": t2l(upstream), "d_cos": t2l(c.grad)})
out["margin"] = {"cos": t2l(cos), "labels": labels.tolist(), "rows": 4, "cols": 4, "cases": margins}

# --- Partial FC, sample_rate 1, one rank ---------------------------------------------------
pfc = []
for name, s, m, thr in [("arcface", 64.0, (1.0, 0.5, 0.0), 0.0),
                        ("cosface", 64.0, (1.0, 0.0, 0.4), 0.0),
                        ("arcface_filter", 64.0, (1.0, 0.5, 0.0), 0.2)]:
    B, D, C = 6, 8, 5
    emb = torch.randn(B, D)
    weight = torch.normal(0, 0.01, (C, D))
    lab = torch.tensor([0, 3, 3, 1, 4, 2])
    e = emb.clone().requires_grad_(True)
    w = weight.clone().requires_grad_(True)
    logits = F.linear(F.normalize(e), F.normalize(w)).clamp(-1, 1)
    z = combined_margin(logits, lab, s, *m, filter_threshold=thr)
    loss = dist_cross_entropy(z, lab)
    loss.backward()
    pfc.append({"name": name, "s": s, "m": list(m), "filter": thr, "batch": B, "dim": D,
                "classes": C, "embeddings": t2l(emb), "weight": t2l(weight), "labels": lab.tolist(),
                "loss": float(loss), "d_embeddings": t2l(e.grad), "d_weight": t2l(w.grad)})
out["pfc"] = pfc

# --- optimizers: three steps on one array --------------------------------------------------
p0 = torch.randn(7)
grads = [torch.randn(7) for _ in range(3)]
opts = []
for name, make in [
    ("sgd", lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=5e-4)),
    ("sgd_plain", lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.0, weight_decay=0.0)),
    ("adamw", lambda ps: torch.optim.AdamW(ps, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1)),
]:
    p = torch.nn.Parameter(p0.clone())
    o = make([p])
    lrs = [0.1, 0.05, 0.02] if name != "adamw" else [1e-3, 5e-4, 2e-4]
    params = []
    for g, lr in zip(grads, lrs):
        for group in o.param_groups:
            group["lr"] = lr
        p.grad = g.clone()
        o.step()
        params.append(t2l(p))
    st = o.state[p]
    opts.append({"name": name, "lrs": lrs, "params": params,
                 "momentum_buffer": t2l(st["momentum_buffer"]) if "momentum_buffer" in st and st["momentum_buffer"] is not None else None,
                 "exp_avg": t2l(st["exp_avg"]) if "exp_avg" in st else None,
                 "exp_avg_sq": t2l(st["exp_avg_sq"]) if "exp_avg_sq" in st else None})
out["optim"] = {"param": t2l(p0), "grads": [t2l(g) for g in grads], "cases": opts}

# clip_grad_norm_ with max_norm 5 on two arrays
g1, g2 = torch.randn(5) * 4, torch.randn(3) * 4
a, b = torch.nn.Parameter(torch.zeros(5)), torch.nn.Parameter(torch.zeros(3))
a.grad, b.grad = g1.clone(), g2.clone()
norm = torch.nn.utils.clip_grad_norm_([a, b], 5.0)
out["clip"] = {"grads": [t2l(g1), t2l(g2)], "norm": float(norm), "clipped": [t2l(a.grad), t2l(b.grad)]}

# --- arcface_torch PolyScheduler (power 2, linear warmup from 0) ---------------------------
from torch.optim.lr_scheduler import _LRScheduler


class PolyScheduler(_LRScheduler):
    def __init__(self, optimizer, base_lr, max_steps, warmup_steps, last_epoch=-1):
        self.base_lr = base_lr
        self.warmup_lr_init = 0.0001
        self.max_steps = max_steps
        self.warmup_steps = warmup_steps
        self.power = 2
        super(PolyScheduler, self).__init__(optimizer, -1, False)
        self.last_epoch = last_epoch

    def get_warmup_lr(self):
        alpha = float(self.last_epoch) / float(self.warmup_steps)
        return [self.base_lr * alpha for _ in self.optimizer.param_groups]

    def get_lr(self):
        if self.last_epoch == -1:
            return [self.warmup_lr_init for _ in self.optimizer.param_groups]
        if self.last_epoch < self.warmup_steps:
            return self.get_warmup_lr()
        alpha = pow(1 - float(self.last_epoch - self.warmup_steps)
                    / float(self.max_steps - self.warmup_steps), self.power)
        return [self.base_lr * alpha for _ in self.optimizer.param_groups]


sched = []
for base, total, warm in [(0.1, 12, 3), (0.02, 7, 0)]:
    q = torch.nn.Parameter(torch.zeros(1))
    o = torch.optim.SGD([q], lr=base)
    sc = PolyScheduler(o, base, total, warm)
    used, logged = [], []
    for _ in range(total):
        used.append(o.param_groups[0]["lr"])  # the lr opt.step() runs with
        sc.step()
        logged.append(sc.get_last_lr()[0])  # the lr train_v2.py logs
    sched.append({"base_lr": base, "total": total, "warmup": warm, "used": used, "logged": logged})
out["schedule"] = sched

path = os.path.join("tests", "fixtures", "head_golden.json")
tmp = path + ".tmp"
with open(tmp, "w") as f:
    json.dump(out, f, indent=1)
os.replace(tmp, path)
print("wrote", path)
