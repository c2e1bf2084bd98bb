"""The HTML report: a real small run rendered by Debian's headless Chromium (the screenshot must show the charts),
its structure read back with html.parser, and hostile names that must not change that structure."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections import Counter
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path
from typing import cast

import pytest

import edgekit
from edgekit.artifacts import Artifact, sha256_file
from edgekit.bench import BenchOptions
from edgekit.errors import ConfigError
from edgekit.pipeline import RunOptions
from edgekit.preflight import REPORT_MARKER, check_report_owner
from edgekit.report import html as page_html
from edgekit.report import recommend, write_report
from edgekit.results import AccuracyBudget, BenchResult, LatencyStats, Metrics, OutputMetrics, Row, RunResult
from edgekit.types import Format, IOSpec, Precision, TensorSpec

CHARTS = ("pareto", "latency", "size-memory")


class Page(HTMLParser):
    """What the tests look at in a report.html: start tags in order, each chart's class, the points, the text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.charts: list[str] = []
        self.points: list[dict[str, str]] = []
        self.attrs: list[tuple[str, str]] = []
        self.text: list[str] = []
        self._fill_next = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.tags.append(tag)
        self.attrs += list(a.items())
        if tag == "svg" and a.get("class", "").startswith("chart "):  # the per-target charts
            self.charts.append(a["class"].removeprefix("chart "))
        if tag == "g" and "point" in a.get("class", "").split():
            self.points.append(a)
            self._fill_next = True
        elif tag == "circle" and self._fill_next:
            self.points[-1]["fill"] = a["fill"]
            self._fill_next = False

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(html: str) -> Page:
    page = Page()
    page.feed(html)
    page.close()
    return page


# ------------------------------------------------------------------------------------------- a real small run
@pytest.fixture(scope="module")
def real_run(tiny_model: tuple[str, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[RunResult, Path]:
    spec, ckpt = tiny_model
    out = tmp_path_factory.mktemp("html-run")
    source = edgekit.load_source(spec, checkpoint=ckpt)
    opts = RunOptions(formats=(Format.ONNX,), precisions=(Precision.FP32, Precision.FP16, Precision.INT8),
                      targets=("local-cpu",), calibration_limit=16, eval_limit=16,
                      bench=BenchOptions(min_runs=5, min_seconds=0.2, memory_pass=False))
    return edgekit.run(source, calibration="digits", out_dir=out, options=opts, progress=lambda _: None), out


def test_the_run_writes_one_self_contained_html_beside_the_markdown(real_run: tuple[RunResult, Path]) -> None:
    result, out = real_run
    html = (out / page_html.HTML_NAME).read_text(encoding="utf-8")
    assert html.startswith(REPORT_MARKER) and "<!DOCTYPE html>" in html.splitlines()[1]
    page = parse(html)
    targets = {r.target for r in result.rows}
    assert Counter(page.charts) == {c: len(targets) for c in CHARTS}  # one <svg> per chart and target
    assert not {"script", "link", "img", "iframe", "object"} & set(page.tags)
    external = [(k, v) for k, v in page.attrs if "://" in v and (k, v) != ("xmlns", "http://www.w3.org/2000/svg")]
    assert external == [], "the report must open without the network"
    assert ("http-equiv", "Content-Security-Policy") in page.attrs
    picks = {(r.runtime, r.artifact) for r in result.recommendations if r.artifact}
    assert picks and {(p["data-runtime"], p["data-artifact"]) for p in page.points
                      if "recommended" in p["class"].split()} == picks
    assert len(page.points) == sum(r.bench is not None and r.metrics is not None for r in result.rows)
    text = " ".join(page.text)
    assert all(a in text for _, a in picks) and "Per-layer error (int8 vs fp32)" in text
    (layers,) = result.layers  # the int8 ONNX artifact's layers vs fp32, in the report and the JSON
    assert layers["artifact"] == "model.int8.onnx" and layers["layers"] and layers["items"] == 8
    assert ("aria-label", "per-layer cosine") in page.attrs
    output = result.rows[0].metrics.outputs[0].name  # type: ignore[union-attr]
    assert "Per-output agreement" in text and output in text


@pytest.mark.skipif(shutil.which("chromium") is None,
                    reason="Debian's chromium is not installed (make system-deps installs it as root)")
def test_headless_chromium_shows_the_charts(real_run: tuple[RunResult, Path], tmp_path: Path) -> None:
    from PIL import Image

    _, out = real_run
    png = tmp_path / "out.png"
    started = time.perf_counter()
    proc = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={png}",
                           "--window-size=1200,2000", (out / page_html.HTML_NAME).resolve().as_uri()],
                          capture_output=True, text=True, timeout=180, check=False)
    seconds = time.perf_counter() - started
    assert proc.returncode == 0 and png.is_file(), proc.stderr[-2000:]
    image = Image.open(png).convert("RGB")
    assert image.size == (1200, 2000)
    colours = cast(list[tuple[int, tuple[int, int, int]]], image.getcolors(image.width * image.height) or [])
    counts = Counter({colour: n for n, colour in colours})

    def near(hex_colour: str, tol: int = 6) -> int:
        want = tuple(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
        return sum(n for c, n in counts.items() if all(abs(a - b) <= tol for a, b in zip(c, want, strict=True)))

    seen = {name: near(colour) for name, colour in [
        ("Pareto front", page_html.FRONT), ("recommended star", page_html.PICK), ("size bars", page_html.SIZE_BAR),
        *((f"{p} points and boxes", page_html.PRECISION_COLOURS[p]) for p in ("fp32", "fp16", "int8"))]}
    assert all(n >= 40 for n in seen.values()), f"a chart element is missing from the screenshot: {seen}"
    assert seen["size bars"] >= 3 * 300, seen  # three bars, each hundreds of pixels long
    white = counts[(255, 255, 255)]
    assert white < 0.97 * image.width * image.height and len(counts) > 100, (white, len(counts))
    print(f"chromium rendered and captured report.html in {seconds:.1f} s: {seen}")


# --------------------------------------------------------------------------------------- synthetic, hostile
IO = IOSpec((TensorSpec("input", ("batch", 3, 8, 8)),), (TensorSpec("logits", ("batch", 10)),))
HOSTILE = '<script>alert(1)</script>"\'\n# </style><!-- ]]> &amp;\u202e'


def _artifact(folder: Path, name: str, precision: Precision) -> Artifact:
    path = folder / name
    path.write_bytes(b"\1" * 4096 * (2 if precision is Precision.FP32 else 1))
    return Artifact(path=path, format=Format.ONNX, precision=precision, io=IO, sha256=sha256_file(path),
                    recipe={"precision": precision.value}, notes=(f"note of {name}",))


def _row(art: Artifact, p50: float, cosine: float, accuracy: float, host: str | None = None) -> Row:
    samples = tuple(p50 * f for f in (0.9, 0.97, 1.0, 1.0, 1.03, 1.1, 1.6))
    stats = LatencyStats(n=7, p50_ms=p50, p90_ms=p50 * 1.1, p99_ms=p50 * 1.6, mean_ms=p50, stdev_ms=0.1,
                         min_ms=p50 * 0.9, max_ms=p50 * 1.6)
    bench = BenchResult(runtime="onnxruntime", threads=1, load_ms=5.0, first_inference_ms=p50 * 2,
                        warmup_ms=(p50,), samples_ms=samples, stats=stats, peak_rss_mb=100.0 + 50 * p50)
    out = OutputMetrics(name="logits", kind="classification", shape=(10,), max_abs=0.1, mean_abs=0.01,
                        cosine_mean=cosine, cosine_min=cosine - 0.01, top1_agreement=0.98, accuracy=accuracy,
                        source_accuracy=0.95)
    metrics = Metrics(n=50, cosine_mean=cosine, cosine_min=cosine - 0.01, max_abs=0.1, mean_abs=0.01,
                      top1_agreement=0.98, accuracy=accuracy, source_accuracy=0.95, outputs=(out,))
    return Row(art, "local-cpu", "onnxruntime", "measured", metrics, bench, host=host)


def synthetic(folder: Path, word: str) -> RunResult:
    """fp32, an accurate int8 (the pick) and a fast int8-dynamic over budget; ``word`` in every outside string."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = "m" + word.replace("/", "")  # a file name holds anything but "/" (newlines, quotes, "<script>")
    fp32 = _artifact(folder, f"{stem}.fp32.onnx", Precision.FP32)
    int8 = _artifact(folder, f"{stem}.int8.onnx", Precision.INT8)
    dyn = _artifact(folder, f"{stem}.int8-dynamic.onnx", Precision.INT8_DYNAMIC)
    rows = [_row(fp32, 3.0, 1.0, 0.95, host=f"pi{word}@host"), _row(int8, 1.5, 0.998, 0.948),
            _row(dyn, 1.0, 0.93, 0.90)]
    budget = AccuracyBudget()
    return RunResult(model={"name": f"model{word}", "source": f"/models/{word}.pt", "task": "image-classification"},
                     dataset={"name": f"data{word}", "eval_items": 50, "calibration_items": 20}, budget=budget,
                     artifacts=(fp32, int8, dyn), rows=tuple(rows), recommendations=recommend(rows, budget),
                     environment={"cpu": f"cpu{word}"}, notes=(f"a note{word}",))


def test_hostile_names_stay_text_and_keep_the_structure(tmp_path: Path) -> None:
    plain, hostile = synthetic(tmp_path / "plain", "x"), synthetic(tmp_path / "hostile", HOSTILE)
    hostile = replace(hostile, model={**hostile.model, "name": f"model{HOSTILE}"},
                      notes=(f"a note{HOSTILE}",))
    a, b = parse(page_html.render_html(plain)), parse(page_html.render_html(hostile))
    assert b.tags == a.tags and b.charts == a.charts  # the same elements in the same order
    assert "script" not in b.tags
    text = " ".join(b.text)
    assert "<script>alert(1)</script>" in text  # shown as text, not run
    assert "\u202e" not in page_html.render_html(hostile)  # no bidi override reaches the page
    # attribute values keep the name (one line: control characters and line breaks become a space)
    assert {p["data-artifact"] for p in b.points} == {" ".join(r.artifact.name.split("\n")).replace("\u202e", " ")
                                                      for r in hostile.rows}


def test_pareto_chart_greys_over_budget_points_and_stars_the_pick(tmp_path: Path) -> None:
    result = synthetic(tmp_path, "")
    assert result.recommendations[0].artifact == "m.int8.onnx"
    points = {p["data-artifact"]: p for p in parse(page_html.render_html(result)).points}
    dyn = points["m.int8-dynamic.onnx"]
    assert dyn["class"] == "point over" and dyn["fill"] == page_html.OVER_BUDGET
    assert points["m.int8.onnx"]["class"] == "point recommended"
    assert points["m.int8.onnx"]["fill"] == page_html.PRECISION_COLOURS["int8"]
    assert points["m.fp32.onnx"]["fill"] == page_html.PRECISION_COLOURS["fp32"]
    html = page_html.render_html(result)
    assert html.count(f'fill="{page_html.MEMORY_BAR}"') == 3 and html.count(f'fill="{page_html.SIZE_BAR}"') == 3
    assert page_html._pareto_front([(1.0, 0.9), (2.0, 0.95), (1.5, 0.8), (3.0, 0.95), (0.5, 0.5)]) == [
        (0.5, 0.5), (1.0, 0.9), (2.0, 0.95)]


def test_a_report_html_that_is_not_edgekits_is_never_overwritten(tmp_path: Path) -> None:
    result = synthetic(tmp_path / "arts", "")
    write_report(result, tmp_path / "run")
    check_report_owner(tmp_path / "run")  # edgekit's own: replaced by the next run
    (tmp_path / "run" / page_html.HTML_NAME).write_text("<html><body>my dashboard</body></html>\n")
    with pytest.raises(ConfigError, match=r"report\.html here was not written by edgekit"):
        check_report_owner(tmp_path / "run")
