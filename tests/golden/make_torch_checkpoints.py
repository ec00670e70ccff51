"""Writes arcface_torch-style checkpoints with Debian's python3-torch, for the import tests.

    /usr/bin/python3 make_torch_checkpoints.py OUT_DIR

OUT_DIR receives: plain.pt (an mbf state dict), seed.pt (the seed's checkpoint_gpu_0.pt
layout), ddp.pt ("module."-prefixed), legacy.pt and legacy_seed.pt (plain and seed in the
pre-1.6 format, a stream of pickles), half.pt (the state dict in float16), pfc.pt (a Partial FC
weight, the wrong content), r18.pt (another architecture), and x.f32 / emb.f32 / emb_half.f32:
a fixed 2×3×112×112 input and the eval-mode embeddings of the float32 and float16 models.
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from backbones import get_model  # noqa: E402

out = sys.argv[1]
torch.manual_seed(0)
model = get_model("mbf")
with torch.no_grad():
    # Away from the initial statistics, so that eval mode exercises every buffer.
    for name, t in model.state_dict().items():
        if name.endswith("running_mean"):
            t.copy_(torch.randn_like(t) * 0.1)
        elif name.endswith("running_var"):
            t.copy_(torch.rand_like(t) + 0.5)
model.eval()
sd = model.state_dict()
x = torch.randn(2, 3, 112, 112)
with torch.no_grad():
    emb = model(x)
torch.save(sd, f"{out}/plain.pt")
torch.save({"epoch": 3, "global_step": 1200, "state_dict_backbone": sd,
            "state_dict_softmax_fc": {"weight": torch.randn(30, 512)}}, f"{out}/seed.pt")
torch.save({"module." + k: v for k, v in sd.items()}, f"{out}/ddp.pt")
torch.save(sd, f"{out}/legacy.pt", _use_new_zipfile_serialization=False)
torch.save({"epoch": 3, "state_dict_backbone": sd}, f"{out}/legacy_seed.pt",
           _use_new_zipfile_serialization=False)
half = {k: (v.half() if v.is_floating_point() else v) for k, v in sd.items()}
torch.save(half, f"{out}/half.pt")
model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in half.items()})
with torch.no_grad():
    emb_half = model(x)
torch.save({"weight": torch.randn(30, 512)}, f"{out}/pfc.pt")
torch.save(get_model("r18").state_dict(), f"{out}/r18.pt")
x.numpy().astype("float32").tofile(f"{out}/x.f32")
emb.numpy().astype("float32").tofile(f"{out}/emb.f32")
emb_half.numpy().astype("float32").tofile(f"{out}/emb_half.f32")
