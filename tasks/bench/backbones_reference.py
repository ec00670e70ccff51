"""PyTorch reference for the backbone benchmark: arcface_torch's backbones
(tests/golden/backbones.py) on the CPU, one measurement per process.

    python3 backbones_reference.py NETWORK MODE BATCH WARMUP RUNS THREADS

MODE is "infer" (model.eval(), torch.no_grad(), forward only) or "train" (model.train(),
forward, then backward of the fixed loss sum(emb * g), gradients set to None before each
step; no optimizer step). Prints one JSON line: the time of each timed run in seconds, the
peak resident memory of the process (VmHWM) and its resident memory before the model was
built (VmRSS after importing torch), both in MiB, and the torch / oneDNN versions.
"""
import json
import os
import re
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "golden"))
from backbones import get_model  # noqa: E402
from peer_timing import status_mib, timed_runs  # noqa: E402


def version():
    dnnl = re.search(r"MKL-DNN (v[\d.]+)", torch.__config__.show())
    return f"torch {torch.__version__}" + (f", oneDNN {dnnl.group(1)}" if dnnl else "")


def main():
    network, mode, batch, warmup, runs, threads = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:7])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    base = status_mib("VmRSS")
    model = get_model(network)
    x = torch.randn(batch, 3, 112, 112)
    g = torch.randn(batch, 512)

    if mode == "infer":
        model.eval()

        def step():
            with torch.no_grad():
                model(x)
    else:
        model.train()

        def step():
            model.zero_grad(set_to_none=True)
            model(x).backward(g)

    times = timed_runs(step, warmup, runs)
    print(json.dumps({
        "times": times,
        "rss_mib": status_mib("VmHWM"),
        "base_rss_mib": base,
        "threads": torch.get_num_threads(),
        "version": version(),
    }))


main()
