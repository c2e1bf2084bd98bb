"""Real third-party OCR models: PaddleOCR's PP-OCRv4 text detector and recogniser as RapidOCR 1.4.4 ships them
(``make model-files`` extracts them from the ``rapidocr-onnxruntime`` wheel, hash-checked). Both are opset-12 ONNX
graphs with dynamic N/H/W, normalised with mean = std = 0.5 (RapidOCR's ``config.yaml``, not ImageNet's).

- Detector (DBNet): ``x`` [N, 3, H, W] -> ``sigmoid_0.tmp_0`` [N, 1, H, W], a text probability map that RapidOCR
  binarises at 0.3: a ``dense`` output judged by the IoU of the maps thresholded at 0.3 (``dense@0.3``).
- Recogniser (SVTR-LCNet, CTC): ``x`` [N, 3, 48, W] -> ``softmax_11.tmp_0`` [N, T, 6625] per-step class
  probabilities: a ``sequence`` output, decoded greedily (argmax, repeats collapsed, blank 0 dropped) and judged by
  the agreement of the decoded text.

Data: text rendered with PIL's default (FreeType) font at several sizes, colours and positions, plus crops of
scikit-image's ``page()`` and ``text()`` photos; calibration/ and eval/ are disjoint folders of PNGs. Every number
asserted is measured int8 against fp32 on the held-out items.

Before this test, static ONNX int8 of both models was an invalid graph (issue 10 item 5: per-channel weights write
an ``axis`` on DequantizeLinear, which opset 12 does not have); edgekit now takes the graph to opset 13 first.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import edgekit
from edgekit.metrics_kinds import decode_sequences
from edgekit.pipeline import RunOptions
from edgekit.results import AccuracyBudget, RunResult
from edgekit.types import Precision

pytestmark = pytest.mark.slow

MODEL_FILES = Path(__file__).resolve().parents[2] / "runs" / ".cache" / "model-files"
QUICK = edgekit.BenchOptions(warmup_runs=1, min_runs=5, min_seconds=0.1, memory_pass=False)
HALF = {"mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}  # RapidOCR 1.4.4 config.yaml, Det and Rec
WORDS = ("edge", "kit", "model", "export", "int8", "OpenVINO", "ONNX", "runtime", "2024", "budget", "text", "line",
         "Paddle", "OCR", "recall", "42", "quantize", "scale", "zero", "point", "graph", "node", "check", "paper",
         "river", "stone", "green", "house", "north", "31.5", "x86", "cold", "light", "sound", "maple", "table")


def model_file(name: str) -> Path:
    path = MODEL_FILES / name
    if not path.is_file():
        pytest.skip(f"{name} is fetched by 'make model-files' (scripts/fetch_model_files.py)")
    return path


def _font(size: int):  # type: ignore[no-untyped-def]
    from PIL import ImageFont

    return ImageFont.load_default(size=size)


def text_line(rng: np.random.Generator, width: int = 320, height: int = 48) -> tuple[np.ndarray, str]:
    """One line of 2-4 words, dark on light (or the reverse), left-aligned in a ``height`` x ``width`` RGB image."""
    from PIL import Image, ImageDraw

    for _ in range(20):
        words = " ".join(rng.choice(WORDS, size=int(rng.integers(2, 5)), replace=False))
        size = int(rng.integers(24, 34))
        font = _font(size)
        left, top, right, bottom = ImageDraw.Draw(Image.new("RGB", (1, 1))).textbbox((0, 0), words, font=font)
        if right - left <= width - 12:
            break
    bg = int(rng.integers(200, 256))
    fg = int(rng.integers(0, 70))
    img = Image.new("RGB", (width, height), (bg, bg - int(rng.integers(0, 20)), bg))
    draw = ImageDraw.Draw(img)
    x = int(rng.integers(3, 10))
    y = (height - (bottom - top)) // 2 - top
    draw.text((x, y), words, fill=(fg, fg, int(rng.integers(0, 90))), font=font)
    return np.asarray(img), words


def text_page(rng: np.random.Generator, size: int = 320) -> np.ndarray:
    """A ``size`` x ``size`` page: several lines of text at random sizes and places, some on a crop of a
    scikit-image photo of printed text (``page()``, ``text()``) scaled up."""
    from PIL import Image, ImageDraw
    from skimage import data

    if rng.random() < 0.35:
        photo = data.page() if rng.random() < 0.5 else data.text()
        h, w = photo.shape
        s = int(min(h, w, rng.integers(110, 170)))
        y, x = int(rng.integers(0, h - s + 1)), int(rng.integers(0, w - s + 1))
        img = Image.fromarray(photo[y:y + s, x:x + s]).resize((size, size)).convert("RGB")
    else:
        bg = int(rng.integers(190, 256))
        img = Image.new("RGB", (size, size), (bg, bg, int(rng.integers(170, 256))))
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(2, 6))):
        words = " ".join(rng.choice(WORDS, size=int(rng.integers(1, 4)), replace=False))
        fg = int(rng.integers(0, 80))
        draw.text((int(rng.integers(0, size // 2)), int(rng.integers(0, size - 40))), words,
                  fill=(fg, fg, fg), font=_font(int(rng.integers(16, 40))))
    return np.asarray(img)


def write_folder(root: Path, images: list[np.ndarray], n_cal: int) -> Path:
    from PIL import Image

    for i, img in enumerate(images):
        split = "calibration" if i < n_cal else "eval"
        (root / split).mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(root / split / f"{i:03d}.png")
    return root


def int8_rows(result: RunResult) -> dict[str, object]:
    return {r.artifact.format.value: r for r in result.rows if r.artifact.precision is Precision.INT8}


def test_pp_ocrv4_recogniser_int8_keeps_the_decoded_text(tmp_path: Path) -> None:
    model = model_file("ch_PP-OCRv4_rec_infer.onnx")
    rng = np.random.default_rng(0)
    lines = [text_line(rng) for _ in range(56)]
    data = write_folder(tmp_path / "lines", [img for img, _ in lines], n_cal=32)
    source = edgekit.load_source(str(model), input_shapes={"x": (1, 3, 48, 320)}, preprocess=HALF)
    result = edgekit.run(source, calibration=data, out_dir=tmp_path / "out", options=RunOptions(
        bench=QUICK, budget=AccuracyBudget(max_sequence_error=0.03)))
    fp32 = next(r for r in result.rows if r.artifact.precision is Precision.FP32 and r.metrics is not None)
    assert fp32.metrics is not None
    (out,) = fp32.metrics.outputs
    assert (out.kind, out.shape, out.cosine_mean) == ("sequence", (40, 6625), None)  # inferred; no cosine of it
    assert out.sequence_agreement == 1.0 and out.char_error_rate == 0.0

    # the fp32 model reads the held-out lines: the normalisation is the model's own (mean = std = 0.5)
    import onnx
    import onnxruntime as ort

    chars = ["<blank>", *next(p.value for p in onnx.load(str(model)).metadata_props
                              if p.key == "character").split("\n"), " "]
    x = np.stack([(img.astype(np.float32) / 255.0 - 0.5) / 0.5 for img, _ in lines[32:]]).transpose(0, 3, 1, 2)
    probs = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    read = ["".join(chars[c] for c in seq) for seq in decode_sequences(probs)]
    exact = np.mean([r.replace(" ", "") == t.replace(" ", "") for r, (_, t) in zip(read, lines[32:], strict=True)])
    assert exact >= 0.6, list(zip(read, [t for _, t in lines[32:]], strict=True))[:5]

    rows = int8_rows(result)
    assert "onnx" in rows, result.notes  # issue 10 item 5: no INVALID_GRAPH any more
    budget = result.budget
    for fmt, row in rows.items():
        m = row.metrics  # type: ignore[attr-defined]
        assert m is not None, (fmt, result.notes)
        o = m.output("softmax_11.tmp_0")
        print(f"rec int8 {fmt}: {o.summary()}")
        assert o.sequence_agreement is not None and o.char_error_rate is not None
        # int8 still reads the lines (a collapsed model reads nothing: error rate 100%) ...
        assert o.char_error_rate < 0.15 and o.sequence_agreement > 0.1, (fmt, o.summary())
        # ... and the budget judges it by its decoded text, measured: refused exactly when over --max-sequence-error
        refused = [line for rec in result.recommendations for line in rec.rejected
                   if line.startswith(row.artifact.name) and "the sequence rule" in line]  # type: ignore[attr-defined]
        assert bool(refused) == (o.char_error_rate > budget.max_sequence_error), (fmt, refused, o.summary())
    md = (tmp_path / "out" / "report.md").read_text()
    assert "sequences agree" in md and "char. error" in md


def test_pp_ocrv4_detector_int8_keeps_the_text_map(tmp_path: Path) -> None:
    model = model_file("ch_PP-OCRv4_det_infer.onnx")
    rng = np.random.default_rng(1)
    data = write_folder(tmp_path / "pages", [text_page(rng) for _ in range(36)], n_cal=24)
    metric_file = tmp_path / "text_metrics.py"
    metric_file.write_text("import numpy as np\n\n"
                           "def text_pixels(reference, candidate):\n"
                           "    return {'text_share_fp32': float(np.mean(reference > 0.3)),\n"
                           "            'text_share': float(np.mean(candidate > 0.3))}\n")
    from edgekit.metrics_user import UserMetric

    source = edgekit.load_source(str(model), input_shapes={"x": (1, 3, 320, 320)}, preprocess=HALF)
    result = edgekit.run(source, calibration=data, out_dir=tmp_path / "out", options=RunOptions(
        bench=QUICK, output_kinds={"sigmoid_0.tmp_0": "dense@0.3"}, budget=AccuracyBudget(min_iou=0.8),
        user_metrics=(UserMetric.load(f"sigmoid_0.tmp_0={metric_file}:text_pixels"),)))
    fp32 = next(r for r in result.rows if r.artifact.precision is Precision.FP32 and r.metrics is not None)
    assert fp32.metrics is not None
    o = fp32.metrics.output("sigmoid_0.tmp_0")
    assert (o.kind, o.threshold, o.top1_agreement) == ("dense", 0.3, None)  # never an argmax over the map
    user = dict(o.user)
    assert 0.01 < user["text_share_fp32"] < 0.5  # the pages have text, and the map finds it
    rows = int8_rows(result)
    assert "onnx" in rows, result.notes
    for fmt, row in rows.items():
        m = row.metrics  # type: ignore[attr-defined]
        assert m is not None, (fmt, result.notes)
        o = m.output("sigmoid_0.tmp_0")
        print(f"det int8 {fmt}: {o.summary()}")
        assert o.iou is not None and o.iou >= 0.8, (fmt, o.summary())
        assert abs(dict(o.user)["text_share"] - user["text_share_fp32"]) < 0.05
    md = (tmp_path / "out" / "report.md").read_text()
    assert "IoU" in md and "text_share" in md
