"""PyTorch reference for the training-step benchmark: arcface_torch's train_v2.py step on the
CPU — backbone (tests/golden/backbones.py), Partial FC V2 with sample_rate 1 (normalised
embeddings and centres, ArcFace margin, softmax cross-entropy), backward, clip_grad_norm_(5)
of the backbone, SGD (momentum 0.9, weight decay 5e-4) on both. The batch is a fixed random
tensor (no data loading), so the loader's cost is on our side only.

    python3 train_reference.py NETWORK BATCH NUM_CLASSES WARMUP RUNS THREADS

Prints one JSON line with the time of each timed step in seconds.
"""
import json
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "golden"))
from backbones import get_model  # noqa: E402
from peer_timing import timed_runs  # noqa: E402


def arcface_logits(logits, labels, s=64.0, m=0.5):
    # arcface_torch's CombinedMarginLoss for (1, 0.5, 0), the true-gradient form.
    index = torch.where(labels != -1)[0]
    target = logits[index, labels[index].view(-1)]
    theta = torch.acos(target.clamp(-1 + 1e-7, 1 - 1e-7))
    final = torch.where(theta + m < math.pi, torch.cos(theta + m), target - math.sin(math.pi - m) * m)
    logits = logits.clone()
    logits[index, labels[index].view(-1)] = final
    return logits * s


def main():
    network, batch, classes, warmup, runs, threads = sys.argv[1], *map(int, sys.argv[2:7])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    backbone = get_model(network).train()
    weight = torch.nn.Parameter(torch.normal(0, 0.01, (classes, 512)))
    opt = torch.optim.SGD([{"params": backbone.parameters()}, {"params": [weight]}], lr=0.1, momentum=0.9,
                          weight_decay=5e-4)
    x = torch.randn(batch, 3, 112, 112)
    labels = torch.randint(0, classes, (batch,))

    def step():
        emb = backbone(x)
        logits = F.linear(F.normalize(emb), F.normalize(weight)).clamp(-1, 1)
        loss = F.cross_entropy(arcface_logits(logits, labels), labels)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(backbone.parameters(), 5)
        opt.step()
        opt.zero_grad()

    times = timed_runs(step, warmup, runs)
    print(json.dumps({"times": times, "threads": torch.get_num_threads(), "version": torch.__version__}))


main()
