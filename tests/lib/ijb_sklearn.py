"""scikit-learn reference for the IJB ROC: reads JSON {scores, labels, targets} on stdin,
prints {fpr, tpr, tar} as eval_ijbc.py computes them (roc_curve, nearest FAR, first minimum)."""
import json
import sys

import numpy as np
from sklearn.metrics import roc_curve

d = json.load(sys.stdin)
fpr, tpr, _ = roc_curve(np.array(d["labels"], dtype=int), np.array(d["scores"]))
tar = [float(tpr[np.argmin(np.abs(fpr - t))]) for t in d["targets"]]
print(json.dumps({"fpr": fpr.tolist(), "tpr": tpr.tolist(), "tar": tar}))
