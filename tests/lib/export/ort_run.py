"""Runs an ONNX model in onnxruntime (CPU): ort_run.py model.onnx input.npy output.npy [threads]."""
import sys

import numpy as np
import onnxruntime as ort

opts = ort.SessionOptions()
opts.intra_op_num_threads = int(sys.argv[4]) if len(sys.argv) > 4 else 1
opts.inter_op_num_threads = 1
sess = ort.InferenceSession(sys.argv[1], opts, providers=["CPUExecutionProvider"])
x = np.load(sys.argv[2]).astype(np.float32)
(y,) = sess.run(None, {sess.get_inputs()[0].name: x})
np.save(sys.argv[3], y.astype(np.float32))
