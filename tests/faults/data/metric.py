import numpy as np


def f(reference, candidate):
    return {"maxabs": float(np.max(np.abs(reference - candidate)))}
