"""onnxruntime peer for the inference benchmark: times one exported model on the CPU.

    python3 onnx_reference.py MODEL.onnx BATCH WARMUP RUNS THREADS

Prints one JSON line: the time of each timed run in seconds, the peak resident memory of
the process in MiB and the onnxruntime version.
"""
import json
import sys

import numpy as np
import onnxruntime as ort
from peer_timing import status_mib, timed_runs

path, batch, warmup, runs, threads = sys.argv[1], *map(int, sys.argv[2:6])
opts = ort.SessionOptions()
opts.intra_op_num_threads = threads
opts.inter_op_num_threads = 1
sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
x = np.random.default_rng(0).standard_normal((batch, 3, 112, 112), dtype=np.float32)
name = sess.get_inputs()[0].name
times = timed_runs(lambda: sess.run(None, {name: x}), warmup, runs)
print(json.dumps({"times": times, "peakMiB": status_mib("VmHWM"), "version": ort.__version__}))
