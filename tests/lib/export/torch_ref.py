"""Reference backbones (arcface_torch iresnet and MobileFaceNet layouts) for the interop tests.

Run with Debian's python3 (torch). `make` builds a backbone with random weights and randomised
batch-norm statistics, and writes into --out:
  model.pt           torch.save of the weights in the chosen --form
  model.safetensors  the same weights (float32, metadata network / embedding_size)
  input.npy          float32 [batch,3,112,112]
  output.npy         float32 [batch,num_features], the eval-mode forward
"""
import argparse
import json
import os
import struct

import numpy as np
import torch
from torch import nn


class IBlock(nn.Module):
    def __init__(self, cin, planes, stride, downsample):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin, eps=1e-5)
        self.conv1 = nn.Conv2d(cin, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes, eps=1e-5)
        self.prelu = nn.PReLU(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes, eps=1e-5)
        self.downsample = downsample

    def forward(self, x):
        y = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        return y + (self.downsample(x) if self.downsample is not None else x)


class IResNet(nn.Module):
    def __init__(self, layers, num_features):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64, eps=1e-5)
        self.prelu = nn.PReLU(64)
        cin = 64
        for s, (planes, n) in enumerate(zip([64, 128, 256, 512], layers)):
            down = nn.Sequential(nn.Conv2d(cin, planes, 1, 2, bias=False), nn.BatchNorm2d(planes, eps=1e-5))
            blocks = [IBlock(cin, planes, 2, down)] + [IBlock(planes, planes, 1, None) for _ in range(n - 1)]
            setattr(self, f"layer{s + 1}", nn.Sequential(*blocks))
            cin = planes
        self.bn2 = nn.BatchNorm2d(512, eps=1e-5)
        self.dropout = nn.Dropout(0.0)
        self.fc = nn.Linear(512 * 49, num_features)
        self.features = nn.BatchNorm1d(num_features, eps=1e-5)

    def forward(self, x):
        x = self.prelu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = torch.flatten(self.bn2(x), 1)
        return self.features(self.fc(self.dropout(x)))


def conv_block(cin, cout, k, s, p, g=1, act=True):
    layers = [nn.Conv2d(cin, cout, k, s, p, groups=g, bias=False), nn.BatchNorm2d(cout)]
    if act:
        layers.append(nn.PReLU(cout))
    m = nn.Module()
    m.layers = nn.Sequential(*layers)
    m.forward = lambda x: m.layers(x)
    return m


class DepthWise(nn.Module):
    def __init__(self, cin, cout, residual, stride, groups):
        super().__init__()
        self.residual = residual
        self.layers = nn.Sequential(
            conv_block(cin, groups, 1, 1, 0),
            conv_block(groups, groups, 3, stride, 1, groups),
            conv_block(groups, cout, 1, 1, 0, act=False),
        )

    def forward(self, x):
        y = self.layers(x)
        return x + y if self.residual else y


class Seq(nn.Module):
    def __init__(self, mods):
        super().__init__()
        self.layers = nn.Sequential(*mods)

    def forward(self, x):
        return self.layers(x)


class Flatten(nn.Module):
    def forward(self, x):
        return x.view(x.size(0), -1)


class MobileFaceNet(nn.Module):
    def __init__(self, num_features, blocks=(1, 4, 6, 2), scale=2):
        super().__init__()
        c64, c128 = 64 * scale, 128 * scale
        res = lambda c, n, g: Seq([DepthWise(c, c, True, 1, g) for _ in range(n)])
        self.layers = nn.ModuleList([
            conv_block(3, c64, 3, 2, 1),
            conv_block(c64, c64, 3, 1, 1, 64) if blocks[0] == 1 else res(c64, blocks[0], 128),
            DepthWise(c64, c64, False, 2, 128),
            res(c64, blocks[1], 128),
            DepthWise(c64, c128, False, 2, 256),
            res(c128, blocks[2], 256),
            DepthWise(c128, c128, False, 2, 512),
            res(c128, blocks[3], 256),
        ])
        self.conv_sep = conv_block(c128, 512, 1, 1, 0)
        self.features = Seq([conv_block(512, 512, 7, 1, 0, 512, act=False), Flatten(),
                             nn.Linear(512, num_features, bias=False), nn.BatchNorm1d(num_features)])

    def forward(self, x):
        for f in self.layers:
            x = f(x)
        return self.features(self.conv_sep(x))


DEPTHS = {"r18": [2, 2, 2, 2], "r34": [3, 4, 6, 3], "r50": [3, 4, 14, 3], "r100": [3, 13, 30, 3],
          "r200": [6, 26, 60, 6]}


def build(network, num_features):
    return MobileFaceNet(num_features) if network == "mbf" else IResNet(DEPTHS[network], num_features)


def randomise(model, gen):
    """Random weights with BN statistics away from the identity, so folding is really tested."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) / fan_in ** 0.5)
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)
            elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                c = m.num_features
                m.weight.copy_(torch.rand(c, generator=gen) * 0.5 + 0.5)
                m.bias.copy_(torch.randn(c, generator=gen) * 0.1)
                m.running_mean.copy_(torch.randn(c, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(c, generator=gen) * 0.5 + 0.75)
            elif isinstance(m, nn.PReLU):
                m.weight.copy_(torch.rand(m.weight.shape, generator=gen) * 0.4)


def write_safetensors(path, sd, metadata):
    header = {"__metadata__": metadata}
    blobs, offset = [], 0
    for k, v in sd.items():
        if k.endswith("num_batches_tracked"):
            continue
        b = v.detach().float().contiguous().numpy().astype("<f4").tobytes()
        header[k] = {"dtype": "F32", "shape": list(v.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("command", choices=["make"])
    p.add_argument("--network", default="mbf")
    p.add_argument("--num-features", type=int, default=512)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--out", required=True)
    p.add_argument("--form", default="plain",
                   choices=["plain", "backbone", "ddp", "legacy", "half", "pfc", "none"])
    a = p.parse_args()
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(a.seed)
    model = build(a.network, a.num_features)
    randomise(model, gen)
    model.eval()
    x = torch.rand((a.batch, 3, 112, 112), generator=gen) * 2 - 1
    with torch.no_grad():
        y = model(x)
    os.makedirs(a.out, exist_ok=True)
    np.save(os.path.join(a.out, "input.npy"), x.numpy())
    np.save(os.path.join(a.out, "output.npy"), y.numpy())
    sd = model.state_dict()
    write_safetensors(os.path.join(a.out, "model.safetensors"), sd,
                      {"network": a.network, "embedding_size": str(a.num_features)})
    pt = os.path.join(a.out, "model.pt")
    if a.form == "plain":
        torch.save(sd, pt)
    elif a.form == "backbone":  # the layout of arcface_torch's checkpoint_gpu_0.pt
        torch.save({"epoch": 3, "global_step": 1000, "state_dict_backbone": sd,
                    "state_dict_softmax_fc": {"weight": torch.randn(10, a.num_features)},
                    "state_optimizer": {}, "state_lr_scheduler": {}}, pt)
    elif a.form == "ddp":
        torch.save({"module." + k: v for k, v in sd.items()}, pt)
    elif a.form == "legacy":
        torch.save(sd, pt, _use_new_zipfile_serialization=False)
    elif a.form == "half":
        torch.save({k: (v.half() if v.is_floating_point() else v) for k, v in sd.items()}, pt)
    elif a.form == "pfc":  # a Partial FC shard, not a backbone
        torch.save({"weight": torch.randn(1000, a.num_features)}, pt)


if __name__ == "__main__":
    main()
