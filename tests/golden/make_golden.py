"""Golden values for the backbones, from PyTorch (run with Debian's /usr/bin/python3, torch 1.13).

    /usr/bin/python3 tests/golden/make_golden.py

Writes tests/fixtures/golden_<model>.safetensors for mbf and r18 (batch 4, dropout 0),
computed in float64 and stored as float32:
  input            [4, 3, 112, 112]
  d_emb            [4, 512]  fixed random weights R of the loss sum(emb * R)
  eval_emb         eval-mode embeddings with the initial running statistics
  train_emb        train-mode embeddings (computed after eval_emb)
  input_grad       d loss / d input
  after.<buffer>   running statistics after the train-mode forward
  grad.<param>     d loss / d param for every trainable parameter, in full when it has at most
                   16,384 elements; larger ones (r18's convolutions and fc) are stored as
  gsample.<param>  4,096 evenly strided elements (index floor(j * numel / 4096)) and
  gnorm.<param>    the L2 norm of the whole gradient (F64 scalar)
  seeded.<tensor>  elements 0, 1, n-2, n-1 of seeded(name, shape), to check the TS generator

The gradients are taken with every PReLU slope set to 1 (after the train-mode forward with
the seeded slopes that gives train_emb and after.*); the metadata "prelu" lists those
tensors. PReLU's derivative jumps at 0, and float32 rounding moves a few of the millions of
PReLU inputs across it, each moving one element of a gradient by (1 - slope) * upstream: any
float32 implementation, PyTorch's own included (8e-3 on r18's layer2.1.bn2.bias with slopes
0.5), then misses the float64 gradients of a few small tensors by up to ~1e-2, by luck of
rounding. With slopes of 1 the derivative is continuous and the gradients measure the
implementation. PReLU's own derivative is checked by finite differences in layers_test.

Batch 4, not 2: in training mode the head's batch norms then see 2 values per channel, and
float32 PyTorch itself differs from float64 by 1.7e-3 (mbf embeddings); with 4 samples it
differs by 1e-5, so a 1e-4 comparison measures the implementation, not rounding luck.

Weights are not stored (r18 alone has 24 M): every parameter and running statistic comes
from seeded(name, shape) below, which tests/lib/golden_weights.ts reproduces bit for bit.
iresnet's features.weight stays at 1 (frozen, as in arcface_torch).
"""
import json
import math
import os
import struct

import numpy as np
import torch
from torch import nn

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures")
FULL_LIMIT = 16384
SAMPLES = 4096
BATCH = 4


# ---------------------------------------------------------------------------------------
# Backbones with arcface_torch's module structure (so state-dict names match).

def conv3x3(cin, cout, stride=1):
    return nn.Conv2d(cin, cout, 3, stride, 1, bias=False)


class IBasicBlock(nn.Module):
    def __init__(self, cin, planes, stride=1, downsample=None):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin, eps=1e-5)
        self.conv1 = conv3x3(cin, planes)
        self.bn2 = nn.BatchNorm2d(planes, eps=1e-5)
        self.prelu = nn.PReLU(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn3 = nn.BatchNorm2d(planes, eps=1e-5)
        self.downsample = downsample

    def forward(self, x):
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        return out + (self.downsample(x) if self.downsample is not None else x)


class IResNet(nn.Module):
    def __init__(self, layers, dropout=0.0, num_features=512):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64, eps=1e-5)
        self.prelu = nn.PReLU(64)
        self.layer1 = self._make_layer(64, layers[0])
        self.layer2 = self._make_layer(128, layers[1])
        self.layer3 = self._make_layer(256, layers[2])
        self.layer4 = self._make_layer(512, layers[3])
        self.bn2 = nn.BatchNorm2d(512, eps=1e-5)
        self.dropout = nn.Dropout(p=dropout, inplace=True)
        self.fc = nn.Linear(512 * 7 * 7, num_features)
        self.features = nn.BatchNorm1d(num_features, eps=1e-5)
        nn.init.constant_(self.features.weight, 1.0)
        self.features.weight.requires_grad = False

    def _make_layer(self, planes, blocks):
        downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes, 1, 2, bias=False), nn.BatchNorm2d(planes, eps=1e-5))
        layers = [IBasicBlock(self.inplanes, planes, 2, downsample)]
        self.inplanes = planes
        layers += [IBasicBlock(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.prelu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.dropout(torch.flatten(self.bn2(x), 1))
        return self.features(self.fc(x))


def conv_block(cin, cout, k=1, s=1, p=0, g=1, act=True):
    mods = [nn.Conv2d(cin, cout, k, s, p, groups=g, bias=False), nn.BatchNorm2d(cout)]
    if act:
        mods.append(nn.PReLU(cout))
    return Seq(mods)


class Seq(nn.Module):
    """ConvBlock / LinearBlock / DepthWise: a module whose children live in `.layers`."""

    def __init__(self, mods, residual=False):
        super().__init__()
        self.layers = nn.Sequential(*mods)
        self.residual = residual

    def forward(self, x):
        return x + self.layers(x) if self.residual else self.layers(x)


def depthwise(cin, cout, residual, s, groups):
    return Seq([conv_block(cin, groups), conv_block(groups, groups, 3, s, 1, groups),
                conv_block(groups, cout, act=False)], residual)


def residual(c, n, groups):
    return Seq([depthwise(c, c, True, 1, groups) for _ in range(n)])


class Flatten(nn.Module):
    def forward(self, x):
        return x.view(x.size(0), -1)


class MobileFaceNet(nn.Module):
    def __init__(self, num_features=512, blocks=(1, 4, 6, 2), scale=2):
        super().__init__()
        c1, c2 = 64 * scale, 128 * scale
        self.layers = nn.ModuleList([conv_block(3, c1, 3, 2, 1)])
        self.layers.append(conv_block(c1, c1, 3, 1, 1, 64) if blocks[0] == 1 else residual(c1, blocks[0], 128))
        self.layers.extend([
            depthwise(c1, c1, False, 2, 128), residual(c1, blocks[1], 128),
            depthwise(c1, c2, False, 2, 256), residual(c2, blocks[2], 256),
            depthwise(c2, c2, False, 2, 512), residual(c2, blocks[3], 256),
        ])
        self.conv_sep = conv_block(c2, 512)
        self.features = Seq([conv_block(512, 512, 7, 1, 0, 512, act=False), Flatten(),
                             nn.Linear(512, num_features, bias=False), nn.BatchNorm1d(num_features)])
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.data.fill_(1)
                m.bias.data.zero_()

    def forward(self, x):
        for f in self.layers:
            x = f(x)
        return self.features(self.conv_sep(x))


# ---------------------------------------------------------------------------------------
# Seeded values, reproduced by tests/lib/golden_weights.ts.

def fnv1a(name):
    h = 0x811C9DC5
    for b in name.encode():
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


def uniform(name, n):
    """n values in [0, 1): a 32-bit hash of (name, index), divided by 2^32 (float64)."""
    x = np.arange(n, dtype=np.uint32) * np.uint32(0x9E3779B1) + np.uint32(fnv1a(name))
    x ^= x >> np.uint32(16)
    x *= np.uint32(0x7FEB352D)
    x ^= x >> np.uint32(15)
    x *= np.uint32(0x846CA68B)
    x ^= x >> np.uint32(16)
    return x.astype(np.float64) / 4294967296.0


def value_range(name, shape):
    """[lo, hi] of the seeded values of tensor `name` (float64)."""
    if name.endswith("running_mean"):
        return -0.1, 0.1
    if name.endswith("running_var"):
        return 0.5, 1.5
    if len(shape) > 1:
        a = math.sqrt(3.0 / (math.prod(shape) // shape[0]))
        return -a, a
    if name.endswith("bias"):
        return -0.1, 0.1
    if "prelu" in name:
        return 0.1, 0.4
    return 0.5, 1.5


def seeded(name, shape):
    lo, hi = value_range(name, shape)
    u = uniform(name, math.prod(shape))
    return (lo + (hi - lo) * u).astype(np.float32).reshape(shape)


# ---------------------------------------------------------------------------------------
# A minimal safetensors writer (the pip package is not installed for this Python).

DTYPES = {np.dtype(np.float32): ("F32", 4), np.dtype(np.float64): ("F64", 8), np.dtype(np.int64): ("I64", 8)}


def save(path, tensors, metadata):
    items = sorted(tensors.items(), key=lambda kv: (-DTYPES[kv[1].dtype][1], kv[0]))
    header, blobs, off = {"__metadata__": metadata}, [], 0
    for name, a in items:
        b = np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": DTYPES[a.dtype][0], "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
    os.replace(tmp, path)


def arr(t):
    return t.detach().cpu().numpy().astype(np.float32)


# ---------------------------------------------------------------------------------------

def golden(name, model):
    torch.manual_seed(1)
    x = (torch.rand(BATCH, 3, 112, 112) * 2 - 1).double()
    r = torch.randn(BATCH, 512).double()
    model.double()
    buffers = [k for k, _ in model.named_buffers() if not k.endswith("num_batches_tracked")]

    model.eval()
    with torch.no_grad():
        eval_emb = model(x)
    model.train()
    xg = x.clone().requires_grad_(True)
    train_emb = model(xg)
    after = {k: arr(v) for k, v in model.state_dict().items() if k in buffers}
    prelus = [k for k, m in model.named_modules() if isinstance(m, nn.PReLU)]
    with torch.no_grad():
        for k in prelus:
            model.get_submodule(k).weight.fill_(1.0)
    xg = x.clone().requires_grad_(True)
    (model(xg) * r).sum().backward()

    out = {"input": arr(x), "d_emb": arr(r), "eval_emb": arr(eval_emb), "train_emb": arr(train_emb),
           "input_grad": arr(xg.grad)}
    state = dict(model.state_dict())
    for k, v in state.items():
        if not k.endswith("num_batches_tracked"):
            flat = seeded(k, list(v.shape)).reshape(-1)
            out["seeded." + k] = flat[[0, 1, flat.size - 2, flat.size - 1]]
    for k in buffers:
        out["after." + k] = after[k]
    for k, p in model.named_parameters():
        if not p.requires_grad:
            continue
        g = arr(p.grad).reshape(-1)
        if g.size <= FULL_LIMIT:
            out["grad." + k] = g.reshape(p.shape)
        else:
            idx = (np.arange(SAMPLES, dtype=np.int64) * g.size) // SAMPLES
            out["gsample." + k] = g[idx]
            out["gnorm." + k] = np.array(np.linalg.norm(p.grad.numpy()), np.float64)
    meta = {"backbone": name, "torch": torch.__version__, "weights": "seeded",
            "prelu": json.dumps([k + ".weight" for k in prelus])}
    save(os.path.join(OUT, f"golden_{name}.safetensors"), out, meta)


def main():
    torch.set_num_threads(2)
    os.makedirs(OUT, exist_ok=True)

    for name, model in (("mbf", MobileFaceNet(512)), ("r18", IResNet([2, 2, 2, 2], 0.0, 512))):
        with torch.no_grad():
            for k, v in model.state_dict().items():
                if k.endswith("num_batches_tracked") or (name == "r18" and k == "features.weight"):
                    continue  # iresnet's features.weight stays frozen at 1, as in arcface_torch
                v.copy_(torch.from_numpy(seeded(k, list(v.shape))))
        golden(name, model)


if __name__ == "__main__":
    main()
