"""onnxruntime peer for the inference benchmark: times one exported model on the CPU.

    python3 onnx_reference.py MODEL.onnx BATCH WARMUP RUNS THREADS

Prints one JSON line: the time of each timed run in seconds, the peak resident memory of
the process in MiB and the onnxruntime version.
"""
import json
import re
import sys
import time

import numpy as np
import onnxruntime as ort

path, batch, warmup, runs, threads = sys.argv[1], *map(int, sys.argv[2:6])
opts = ort.SessionOptions()
opts.intra_op_num_threads = threads
opts.inter_op_num_threads = 1
sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
x = np.random.default_rng(0).standard_normal((batch, 3, 112, 112), dtype=np.float32)
name = sess.get_inputs()[0].name
for _ in range(warmup):
    sess.run(None, {name: x})
times = []
for _ in range(runs):
    start = time.perf_counter()
    sess.run(None, {name: x})
    times.append(time.perf_counter() - start)
# VmHWM, not ru_maxrss: the latter keeps the high-water mark of the process before exec.
with open("/proc/self/status") as f:
    peak = int(re.search(r"VmHWM:\s+(\d+)", f.read()).group(1)) / 1024
print(json.dumps({"times": times, "peakMiB": peak, "version": ort.__version__}))
