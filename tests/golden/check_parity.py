"""Compares libarcface against the PyTorch definitions in backbones.py through ctypes:
parameter counts, eval and train embeddings, running statistics and every gradient.

    /usr/bin/python3 tests/golden/check_parity.py build/libarcface.so r18 mbf
"""
import ctypes
import json
import sys

import numpy as np
import torch

from backbones import get_model


def main(lib_path, names):
    lib = ctypes.CDLL(lib_path)
    lib.afc_last_error.restype = ctypes.c_char_p
    ctx = ctypes.c_void_p()
    assert lib.afc_context_create(0, 2, ctypes.byref(ctx)) == 0
    fp = ctypes.POINTER(ctypes.c_float)
    worst = 0.0
    for name in names:
        torch.manual_seed(0)
        tm = get_model(name)
        n = 4
        model = ctypes.c_void_p()
        st = lib.afc_model_create(ctx, name.encode(), 512, ctypes.c_float(0.0), n, ctypes.byref(model))
        assert st == 0, lib.afc_last_error()
        need = ctypes.c_int64()
        lib.afc_model_describe(model, None, ctypes.c_int64(0), ctypes.byref(need))
        buf = ctypes.create_string_buffer(need.value)
        lib.afc_model_describe(model, buf, ctypes.c_int64(need.value), ctypes.byref(need))
        desc = json.loads(buf.value)
        count = sum(p.numel() for p in tm.parameters())
        print(name, "parameters", desc["parameters"], "torch", count, "memory", desc["memory"])
        sd = {k: v for k, v in tm.state_dict().items() if not k.endswith("num_batches_tracked")}
        assert [t["name"] for t in desc["tensors"]] == list(sd.keys()), "state-dict names differ"
        # random BN stats/affine so eval mode is a real test
        with torch.no_grad():
            for k, v in sd.items():
                if k.endswith("running_var"):
                    v.uniform_(0.5, 1.5)
                elif k.endswith("running_mean") or k.endswith(".bias"):
                    v.uniform_(-0.1, 0.1)
        for k, v in sd.items():
            a = np.ascontiguousarray(v.detach().numpy(), dtype=np.float32)
            assert lib.afc_model_tensor_write(model, k.encode(), a.ctypes.data_as(fp), ctypes.c_int64(a.size)) == 0, lib.afc_last_error()
        x = torch.randn(n, 3, 112, 112)
        xa = np.ascontiguousarray(x.numpy())
        emb = np.zeros((n, 512), np.float32)
        def rel(a, b):
            return float(np.abs(a - b).max() / (np.abs(b).max() + 1e-12))
        tm.eval()
        with torch.no_grad():
            ref = tm(x).numpy()
        assert lib.afc_model_forward(model, xa.ctypes.data_as(fp), ctypes.c_int64(n), 1 - 1, emb.ctypes.data_as(fp)) == 0, lib.afc_last_error()
        print("  eval  rel", rel(emb, ref))
        tm.train()
        xt = x.clone().requires_grad_(True)
        out = tm(xt)
        g = torch.randn_like(out)
        out.backward(g)
        assert lib.afc_model_forward(model, xa.ctypes.data_as(fp), ctypes.c_int64(n), 1, emb.ctypes.data_as(fp)) == 0, lib.afc_last_error()
        print("  train rel", rel(emb, out.detach().numpy()))
        ga = np.ascontiguousarray(g.numpy())
        dx = np.zeros_like(xa)
        assert lib.afc_model_backward(model, ga.ctypes.data_as(fp), ctypes.c_int64(n), dx.ctypes.data_as(fp), 0) == 0, lib.afc_last_error()
        print("  dinput rel", rel(dx, xt.grad.numpy()))
        wg, wn = 0.0, ""
        for k, p in tm.named_parameters():
            if not p.requires_grad:
                continue
            a = np.zeros(p.numel(), np.float32)
            assert lib.afc_model_grad_read(model, k.encode(), a.ctypes.data_as(fp), ctypes.c_int64(a.size)) == 0, lib.afc_last_error()
            r = rel(a.reshape(p.shape), p.grad.numpy())
            if r > wg:
                wg, wn = r, k
        print("  worst grad rel", wg, wn)
        ws, wsn = 0.0, ""
        for k, v in tm.state_dict().items():
            if "running" in k:
                a = np.zeros(v.numel(), np.float32)
                lib.afc_model_tensor_read(model, k.encode(), a.ctypes.data_as(fp), ctypes.c_int64(a.size))
                r = rel(a, v.numpy().ravel())
                if r > ws:
                    ws, wsn = r, k
        print("  worst running-stat rel", ws, wsn)
        lib.afc_model_destroy(model)
    lib.afc_context_destroy(ctx)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:] or ["r18", "mbf"])
