"""Python reference for the data benchmark: arcface_torch's MXFaceDataset path without MXNet.

Reads train.rec through train.idx, decodes JPEGs with PIL, flips at random, normalises to
(x / 255 - 0.5) / 0.5 NCHW float32, batched by a torch DataLoader with 2 worker processes
(as arcface_torch's get_dataloader does). Prints one line: images/s.
"""
import io
import mmap
import struct
import sys
import time

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset


class RecDataset(Dataset):
    def __init__(self, rec, size):
        self.rec = rec
        self.size = size
        idx = rec[:-4] + ".idx"
        self.offsets = {}
        for line in open(idx):
            k, o = line.split()
            self.offsets[int(k)] = int(o)
        self.map = None
        head = self.read(0)
        flag, _ = struct.unpack("<If", head[:8])
        if flag > 0:
            first = int(struct.unpack("<f", head[24:28])[0])
            self.keys = list(range(1, first))
        else:
            self.keys = sorted(self.offsets)

    def read(self, key):
        if self.map is None:
            self.file = open(self.rec, "rb")
            self.map = mmap.mmap(self.file.fileno(), 0, access=mmap.ACCESS_READ)
        pos, out = self.offsets[key], b""
        while True:
            magic, word = struct.unpack("<II", self.map[pos:pos + 8])
            cflag, length = word >> 29, word & ((1 << 29) - 1)
            out += self.map[pos + 8:pos + 8 + length]
            if cflag in (0, 3):
                return out
            out += struct.pack("<I", magic)
            pos += 8 + ((length + 3) & ~3)

    def __len__(self):
        return self.size

    def __getitem__(self, i):
        s = self.read(self.keys[i % len(self.keys)])
        flag, label = struct.unpack("<If", s[:8])
        if flag > 0:
            label = struct.unpack("<f", s[24:28])[0]
        img = np.asarray(Image.open(io.BytesIO(s[24 + 4 * flag:])).convert("RGB"))
        if np.random.rand() < 0.5:
            img = img[:, ::-1]
        x = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).float()
        return (x / 255 - 0.5) / 0.5, int(label)


def main():
    rec, images, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    torch.set_num_threads(1)
    loader = DataLoader(RecDataset(rec, images), batch_size=batch, shuffle=True, num_workers=2, drop_last=True)
    it = iter(loader)
    next(it)  # workers started
    start, n = time.perf_counter(), 0
    for x, _ in it:
        n += x.shape[0]
    print(f"{n / (time.perf_counter() - start):.1f}")


main()
