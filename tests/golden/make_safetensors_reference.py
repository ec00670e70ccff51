"""Writes tests/fixtures/safetensors_reference.safetensors with the reference writer
(pip package `safetensors`): y F32 [1], z F32 [0, 512], x F16 [3]; header 168 bytes."""
import os

import numpy as np
from safetensors.numpy import save_file

out = os.path.join(os.path.dirname(__file__), "..", "fixtures", "safetensors_reference.safetensors")
save_file({
    "y": np.array([1.5], np.float32),
    "z": np.zeros((0, 512), np.float32),
    "x": np.array([1, -2, 0.5], np.float16),
}, out)
