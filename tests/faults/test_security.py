"""Security faults: a Hugging Face folder that would run its own Python code, and report text that would change
the structure of report.md. Real folders, real custom modules (which would create a marker file if they ever
ran), real processes with a real ``yes y |`` pipe on stdin. See tests/faults/CASES.md ("Security").
"""

from __future__ import annotations

import json
import os
import re
import shlex
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from edgekit.api import load_source
from edgekit.artifacts import Artifact, sha256_file
from edgekit.errors import ConfigError, SourceError
from edgekit.report import render_markdown
from edgekit.results import (
    AccuracyBudget,
    BenchResult,
    LatencyStats,
    Metrics,
    Recommendation,
    Row,
    RunResult,
)
from edgekit.types import Format, IOSpec, Precision, TensorSpec

CLI = [sys.executable, "-c", "import sys; from edgekit.cli import main; sys.exit(main())"]

CUSTOM_MODULE = '''import pathlib
pathlib.Path({marker!r}).write_text("the model folder's own code ran")
from transformers import {base}


class {name}({base}):
    model_type = "edgekit-custom"
'''


def _custom_config_folder(folder: Path, marker: Path) -> Path:
    """A folder whose config.json sends transformers to the folder's configuration_custom.py / modeling_custom.py
    (``auto_map``), as a model from the Hub with custom code is saved; the modules write ``marker`` on import."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({
        "architectures": ["CustomModel"], "model_type": "edgekit-custom", "hidden_size": 8,
        "auto_map": {"AutoConfig": "configuration_custom.CustomConfig", "AutoModel": "modeling_custom.CustomModel"}}))
    (folder / "configuration_custom.py").write_text(
        CUSTOM_MODULE.format(marker=str(marker), base="PretrainedConfig", name="CustomConfig"))
    (folder / "modeling_custom.py").write_text(
        CUSTOM_MODULE.format(marker=str(marker), base="PreTrainedModel", name="CustomModel"))
    (folder / "model.safetensors").write_bytes(b"\0" * 64)
    return folder


def _env(tmp_path: Path) -> dict[str, str]:
    """The child's environment: offline, and transformers' copy of any module it imports kept in tmp_path."""
    return {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "hf-modules"), "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1", "USE_TF": "0"}


# ------------------------------------------------------------------------------------------ remote code
def test_custom_code_folder_is_refused_even_when_stdin_answers_yes(tmp_path: Path) -> None:
    """transformers asks "run the custom code? [y/N]" on stdin when not told; `yes y |` answered it and the
    folder's Python ran. edgekit refuses first, in one line naming the file and the opt-in."""
    marker = tmp_path / "MARKER"
    folder = _custom_config_folder(tmp_path / "custom-model", marker)
    argv = [*CLI, "export", "--model", str(folder), "--calibration", "sentences", "--out", str(tmp_path / "out")]
    got = subprocess.run(f"yes y | {shlex.join(argv)}", shell=True, capture_output=True, text=True, timeout=300,
                         check=False, cwd=tmp_path, env=_env(tmp_path))
    assert not marker.exists(), "the model folder's own Python code ran"
    assert got.returncode == 2, (got.returncode, got.stderr[-2000:])
    lines = got.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in got.stderr, got.stderr
    assert f"{folder / 'config.json'}:auto_map" in lines[0] and "--trust-remote-code" in lines[0], lines[0]


@pytest.mark.parametrize(("file", "content", "key"), [
    ("tokenizer_config.json", {"auto_map": {"AutoTokenizer": ["tokenization_custom.CustomTokenizer", None]}},
     "auto_map"),
    ("config.json", {"architectures": ["BertModel"], "model_type": "bert",
                     "custom_pipelines": {"x": {"impl": "pipe.Pipe"}}}, "custom_pipelines"),
    ("preprocessor_config.json", {"processor_class": "x", "image_processor_type": "extra_code.py"},
     "image_processor_type"),
])
def test_every_way_a_folder_names_its_own_code_is_refused(tmp_path: Path, file: str, content: dict[str, Any],
                                                          key: str) -> None:
    marker = tmp_path / "MARKER"
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"architectures": ["BertModel"], "model_type": "bert"}))
    (folder / file).write_text(json.dumps(content))
    (folder / "model.safetensors").write_bytes(b"\0" * 64)
    for name in ("tokenization_custom.py", "pipe.py", "extra_code.py"):
        (folder / name).write_text(f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n")
    with pytest.raises(SourceError) as err:
        load_source(folder)
    text = str(err.value)
    assert f"{folder / file}:{key}" in text and "--trust-remote-code" in text and "\n" not in text, text
    assert not marker.exists()


def test_the_api_refuses_without_asking_and_the_option_applies_to_folders_only(tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    folder = _custom_config_folder(tmp_path / "custom-model", marker)
    with pytest.raises(SourceError, match=r"config\.json asks to run Python code from the model folder"):
        load_source(folder)
    with pytest.raises(SourceError, match="trust_remote_code=True"):
        load_source(str(folder), trust_remote_code=False)
    assert not marker.exists()
    onnx_file = tmp_path / "model.onnx"
    onnx_file.write_bytes(b"")
    with pytest.raises(ConfigError, match="--trust-remote-code applies only to a Hugging Face model folder"):
        load_source(onnx_file, trust_remote_code=True)


TRUSTED = r'''
import json, sys
from edgekit.api import load_source
from edgekit.report import render_markdown
from edgekit.results import AccuracyBudget, RunResult

src = load_source(sys.argv[1], trust_remote_code=True)
result = RunResult(model=src.describe(), dataset={"name": "sentences"}, budget=AccuracyBudget(), artifacts=(),
                   rows=(), recommendations=(), environment={})
print(json.dumps({"trust": src.describe()["trust_remote_code"], "fingerprint": src.fingerprint,
                  "tokenizer": type(__import__("edgekit.data.preprocess", fromlist=["tokenizer"]).tokenizer(
                      sys.argv[1], True)).__name__,
                  "markdown": render_markdown(result)}))
'''


@pytest.mark.slow
def test_a_custom_tokenizer_is_refused_and_runs_only_when_trusted_which_the_report_records(tmp_path: Path) -> None:
    """A real (tiny) BERT whose tokenizer_config.json names its own tokenizer module: refused by default; with
    trust_remote_code=True the module runs (as asked) and the report's model description says so."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    folder = tmp_path / "bert-custom-tokenizer"
    folder.mkdir()
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "bad", "movie", "a"]) + "\n")
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=9, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32, max_position_embeddings=64)).save_pretrained(str(folder))
    BertTokenizer(str(vocab)).save_pretrained(str(folder))
    tok_cfg = json.loads((folder / "tokenizer_config.json").read_text())
    tok_cfg["auto_map"] = {"AutoTokenizer": ["tokenization_custom.CustomTokenizer", None]}
    (folder / "tokenizer_config.json").write_text(json.dumps(tok_cfg))
    marker = tmp_path / "MARKER"
    (folder / "tokenization_custom.py").write_text(
        CUSTOM_MODULE.format(marker=str(marker), base="BertTokenizer", name="CustomTokenizer"))

    with pytest.raises(SourceError, match=r"tokenizer_config\.json asks to run Python code .*--trust-remote-code"):
        load_source(folder)
    assert not marker.exists()

    got = subprocess.run([sys.executable, "-c", TRUSTED, str(folder)], capture_output=True, text=True,
                         timeout=600, check=False, cwd=tmp_path, env=_env(tmp_path))
    assert got.returncode == 0, got.stderr[-3000:]
    out = json.loads(got.stdout.strip().splitlines()[-1])
    assert marker.exists() and out["trust"] is True and out["tokenizer"] == "CustomTokenizer"
    assert "+code:" in out["fingerprint"]  # the trusted code is part of what the source is
    assert "- trust_remote_code: True" in out["markdown"]


# ------------------------------------------------------------------------------------------ report text
HOSTILE = ("x\n# injected heading\n\n| fake | row |\r\n- item `code` <script>alert(1)</script> \\| \u2028"
           "~~~\n1. list\x0b<img src=x onerror=alert(1)>")
IO = IOSpec((TensorSpec("input", ("batch", 3)),), (TensorSpec("logits", ("batch", 10)),))


def _bench(p50: float, environment: dict[str, Any]) -> BenchResult:
    samples = tuple(p50 * f for f in (0.98, 1.0, 1.0, 1.02, 1.1))
    stats = LatencyStats(n=len(samples), p50_ms=statistics.median(samples), p90_ms=max(samples),
                         p99_ms=max(samples), mean_ms=statistics.fmean(samples), stdev_ms=statistics.stdev(samples),
                         min_ms=min(samples), max_ms=max(samples))
    return BenchResult(runtime="onnxruntime", threads=1, load_ms=5.0, first_inference_ms=p50 * 2, warmup_ms=(p50,),
                       samples_ms=samples, stats=stats, peak_rss_mb=50.0,
                       session_info={"providers": [f"CPU{environment['k']}"]}, environment=environment)


def _result(tmp_path: Path, h: str) -> RunResult:
    """A run whose every outside string (model, path, file, target, host, reason, note, a board's environment)
    holds ``h``."""
    folder = tmp_path / ("hostile" if h != "X" else "plain")
    folder.mkdir()
    path = folder / f"model{h.replace('/', '_')}.onnx"  # a file name may hold anything but "/"
    path.write_bytes(b"\0" * 100)
    art = Artifact(path=path, format=Format.ONNX, precision=Precision.FP32, io=IO, sha256=sha256_file(path),
                   notes=(f"note {h}",))
    metrics = Metrics(n=10, cosine_mean=1.0, cosine_min=1.0, max_abs=0.0, mean_abs=0.0, top1_agreement=1.0)
    env = {"k": h, f"key{h}": f"value{h}", "nested": {f"n{h}": h}}
    rows = (Row(art, f"board{h}", "onnxruntime", "measured-remote", metrics, _bench(2.0, env), host=f"pi{h}@b"),
            Row(art, "local-cpu", "onnxruntime", "failed", metrics, None, reason=f"it broke: {h}"))
    recs = (Recommendation(f"board{h}", "onnxruntime", art.name, f"{h} because {h}", rejected=(f"{h}: slower",)),)
    return RunResult(model={"name": f"model{h}", "source": f"/models/{h}", "task": h},
                     dataset={"name": f"data{h}", "origin": h}, budget=AccuracyBudget(), artifacts=(art,),
                     rows=rows, recommendations=recs, environment={"cpu": h, h: "x"}, notes=(h, f"- {h}"))


def _unescaped(line: str, char: str) -> int:
    """How many ``char`` in ``line`` are not backslash-escaped."""
    count, i = 0, 0
    while i < len(line):
        if line[i] == "\\":
            i += 2
            continue
        count += line[i] == char
        i += 1
    return count


def _skeleton(md: str) -> list[tuple[Any, ...]]:
    """The structure of a Markdown text, line by line: blank, heading level, table row and its cell count,
    list item and its indent, fence, or paragraph; and its unescaped backticks."""
    out: list[tuple[Any, ...]] = []
    for line in md.split("\n"):
        if not line.strip():
            kind: tuple[Any, ...] = ("blank",)
        elif m := re.match(r"^(#{1,6})\s", line):
            kind = ("heading", len(m.group(1)))
        elif line.startswith("|"):
            kind = ("row", _unescaped(line, "|"))
        elif m := re.match(r"^(\s*)([-+*]|\d+[.)])\s", line):
            first = line[m.end():][:1]  # an item starting with a block marker would nest a block in it
            kind = ("item", len(m.group(1)), first != "" and first in "#-+*>~|`0123456789")
        elif re.match(r"^\s*(```|~~~)", line):
            kind = ("fence",)
        else:
            kind = ("para", len(line) - len(line.lstrip()) >= 4)
        out.append((*kind, _unescaped(line, "`")))
    return out


def test_report_text_cannot_change_the_structure_of_report_md(tmp_path: Path) -> None:
    plain = render_markdown(_result(tmp_path, "X"))
    hostile = render_markdown(_result(tmp_path, HOSTILE))
    assert hostile.count("\n") == plain.count("\n")
    assert hostile.splitlines() == hostile.split("\n")[:-1]  # no \u2028, \x0b ... line breaks of any kind
    assert _skeleton(hostile) == _skeleton(plain)  # same headings, rows with as many cells, items, backticks
    assert re.search(r"<[A-Za-z!/?]", hostile) is None, "raw HTML in report.md"
    assert "injected heading" in hostile and "&lt;script&gt;" in hostile  # the text is kept, made inert
