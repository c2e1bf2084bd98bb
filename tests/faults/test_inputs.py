"""Options and inputs that exited 0 (the value was ignored or silently used) or crashed with a traceback: each is
now one ``edgekit: error:`` line naming the option or file and what is allowed, exit 2. Real files (factories, data
sets, model folders, target and inventory files, sidecars) through the real command line (``edgekit.cli.main``).
See tests/faults/CASES.md ("Options and inputs")."""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from edgekit.cli import main

TINY = '''
import torch
from torch import nn

INPUT_SHAPE = {shape}
PREPROCESS = {{"size": (16, 16), "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}}
TASK = "image-classification"


def build() -> nn.Module:
    {before}
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(8, 10))
    {after}
    return model
'''

RUN = ["--calibration", "digits", "--formats", "onnx", "--precisions", "fp32", "--calibration-limit", "8",
       "--eval-limit", "8", "--min-runs", "2", "--min-seconds", "0.1", "--no-memory"]


def _factory(folder: Path, name: str, *, shape: str = "(1, 3, 16, 16)", before: str = "pass",
             after: str = "pass") -> str:
    path = folder / f"{name}.py"
    path.write_text(TINY.format(shape=shape, before=before, after=after))
    return f"{path}:build"


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path | str]:
    """Every bad input of the table, written once."""
    d = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(0)
    cal, ev = (rng.standard_normal((8, 3, 16, 16)).astype(np.float32) for _ in range(2))
    np.savez(d / "labels.npz", calibration=cal, eval=ev, calibration_labels=np.arange(8),
             eval_labels=np.array([0, 1, 2, 3, 4, 5, 6, 12]))  # 12: the model has 10 classes
    np.savez(d / "good.npz", calibration=cal, eval=ev)
    raw = bytearray((d / "good.npz").read_bytes())
    with zipfile.ZipFile(d / "good.npz") as zf:  # stored, not deflated: flip one byte of eval's data
        info = zf.getinfo("eval.npy")
        raw[info.header_offset + 30 + len(info.filename) + len(info.extra) + 300] ^= 0xFF
    (d / "crc.npz").write_bytes(bytes(raw))
    out: dict[str, Path | str] = {"dir": d, "labels": d / "labels.npz", "crc": d / "crc.npz"}
    out["tiny"] = _factory(d, "tiny")
    out["exit"] = _factory(d, "exits", before="import sys; sys.exit(3)")
    out["shape_str"] = _factory(d, "shape_str", shape='"1,3,16,16"')
    out["shape_int"] = _factory(d, "shape_int", shape="16")
    out["shape_float"] = _factory(d, "shape_float", shape="(1, 3.5, 16, 16)")
    out["nan"] = _factory(d, "nan_weights", after="model[4].weight.data[2, 3] = float('nan')")
    out["inf"] = _factory(d, "inf_weights", after="model[0].bias.data[1] = float('inf')")
    nan_onnx = d / "nan.onnx"
    _onnx_with_nan(nan_onnx)
    out["nan_onnx"] = nan_onnx
    (d / "list-config").mkdir()
    (d / "list-config" / "config.json").write_text("[1, 2, 3]")
    (d / "str-config").mkdir()
    (d / "str-config" / "config.json").write_text('"a model"')
    local = (Path(__file__).resolve().parents[2] / "targets" / "local-cpu.toml").read_text(encoding="utf-8")
    (d / "latin1.toml").write_bytes(local.replace('name = "local-cpu"', 'name = "caf\xe9-cpu"').encode("latin-1"))
    (d / "no-such-runtime.toml").write_text(local.replace('name = "local-cpu"', 'name = "odd-cpu"')
                                            .replace('name = "onnxruntime"', 'name = "onnxruntim"'), encoding="utf-8")
    (d / "inventory.toml").write_bytes('[[host]]\naddress = "pi@caf\xe9:22"\ntarget = "raspberry-pi-5"\n'
                                       .encode("latin-1"))
    np.savez(d / "y.npz", y=rng.standard_normal((8, 3, 16, 16)).astype(np.float32))  # the model's input is 'input'
    from onnx_helpers import make_model

    make_model(d / "vector.onnx", size=8)  # one float input X (1, 8): no image
    _int_checkpoint(d / "int.safetensors")
    _image_class_folders(d / "cats", ("cat", "dog"))
    return out


def _int_checkpoint(path: Path) -> None:
    """The tiny factory's weights with its Linear weight saved as int32 (load_state_dict cast it silently)."""
    import torch
    from safetensors.torch import save_file
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(8, 10))
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    state["4.weight"] = (state["4.weight"] * 100).to(torch.int32)
    save_file(state, str(path))


def _image_class_folders(folder: Path, classes: tuple[str, ...], n: int = 2) -> Path:
    """calibration/ and eval/ with one subfolder of ``n`` small PNGs per class."""
    from PIL import Image

    for split in ("calibration", "eval"):
        for k, name in enumerate(classes):
            (folder / split / name).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                image = Image.fromarray(np.full((16, 16, 3), 30 * k + 10 * i, np.uint8))
                image.save(folder / split / name / f"{i}.png")
    return folder


def _onnx_with_nan(path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = np.ones((768, 10), np.float32)
    w[5, 7] = np.nan
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["input"], ["flat"]), helper.make_node("MatMul", ["flat", "W"], ["logits"])],
        "nan", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])],
        initializer=[numpy_helper.from_array(w, "W")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def _artifact_with_sidecar(folder: Path, sidecar: str) -> Path:
    """A real ONNX file with ``sidecar`` as its ``.edgekit.json``."""
    from onnx_helpers import make_model

    path = folder / f"model-{abs(hash(sidecar)) % 10**8}.onnx"
    make_model(path, size=8)
    (folder / f"{path.name}.edgekit.json").write_text(sidecar)
    return path


Case = Callable[[dict[str, "Path | str"], Path], list[str]]

# id -> (argv given the files and an output folder, what the one line names)
CASES: dict[str, tuple[Case, tuple[str, ...]]] = {
    "max-drop-negative": (lambda f, o: ["run", "--model", str(f["tiny"]), "--out", str(o), *RUN, "--max-drop", "-5"],
                          ("--max-drop", "[0, 100]", "-5")),
    "max-drop-nan": (lambda f, o: ["run", "--model", str(f["tiny"]), "--out", str(o), *RUN, "--max-drop", "nan"],
                     ("--max-drop", "nan")),
    "min-cosine-2": (lambda f, o: ["run", "--model", str(f["tiny"]), "--out", str(o), *RUN, "--min-cosine", "2"],
                     ("--min-cosine", "[-1, 1]")),
    "max-flip-rate-1.5": (lambda f, o: ["run", "--model", str(f["tiny"]), "--out", str(o), *RUN,
                                        "--max-flip-rate", "1.5"], ("max_flip_rate", "[0, 1]")),
    "threads-0": (lambda f, o: ["run", "--model", str(f["tiny"]), "--out", str(o), *RUN, "--threads", "0"],
                  ("--threads", "from 1", "got 0")),
    "threads-negative": (lambda f, o: ["bench", "--model", str(f["tiny"]), "--calibration", "digits",
                                       "--artifact", str(o / "none.onnx"), "--threads", "-3"],
                         ("--threads", "from 1", "got -3")),
    "eval-limit-0": (lambda f, o: ["run", "--model", str(f["tiny"]), "--out", str(o), *RUN, "--eval-limit", "0"],
                     ("--eval-limit", ">= 1")),
    "min-seconds-nan": (lambda f, o: ["run", "--model", str(f["tiny"]), "--out", str(o), *RUN,
                                      "--min-seconds", "nan"], ("--min-seconds", "nan")),
    "out-empty": (lambda f, o: ["run", "--model", str(f["tiny"]), "--out", "", *RUN], ("--out", "a folder path")),
    "labels-outside-classes": (lambda f, o: ["run", "--model", str(f["tiny"]), "--out", str(o), *RUN,
                                             "--calibration", str(f["labels"])],
                               ("labels.npz", "eval labels", "0..9", "got 12")),
    "exclude-nodes-no-such-node": (lambda f, o: ["run", "--model", str(f["tiny"]), "--out", str(o), *RUN,
                                                 "--precisions", "fp32,int8", "--exclude-nodes", "/0/Conv,/9/Nope"],
                                   ("--exclude-nodes", "/9/Nope", "no such node")),
    "exclude-nodes-without-int8": (lambda f, o: ["run", "--model", str(f["tiny"]), "--out", str(o), *RUN,
                                                 "--exclude-nodes", "/0/Conv"],
                                   ("--exclude-nodes", "int8 in --precisions")),
    "factory-calls-sys-exit": (lambda f, o: ["run", "--model", str(f["exit"]), "--out", str(o), *RUN],
                               ("exits.py:build", "sys.exit(3)")),
    "mean-not-numbers": (lambda f, o: ["run", "--model", str(f["tiny"]), "--out", str(o), *RUN, "--mean", "abc"],
                         ("--mean", "'abc'")),
    "input-shape-string": (lambda f, o: ["run", "--model", str(f["shape_str"]), "--out", str(o), *RUN],
                           ("shape_str.py:INPUT_SHAPE", "tuple of positive ints")),
    "input-shape-int": (lambda f, o: ["run", "--model", str(f["shape_int"]), "--out", str(o), *RUN],
                        ("shape_int.py:INPUT_SHAPE", "got 16")),
    "input-shape-float": (lambda f, o: ["run", "--model", str(f["shape_float"]), "--out", str(o), *RUN],
                          ("shape_float.py:INPUT_SHAPE", "3.5")),
    "input-shape-absurd": (lambda f, o: ["run", "--model", str(f["tiny"]), "--out", str(o), *RUN,
                                         "--input-shape", "1,3,30000,30000"],
                           ("--input-shape 1,3,30000,30000", "10.8 GB", "at most 2 GiB")),
    "config-json-a-list": (lambda f, o: ["export", "--model", str(f["dir"] / "list-config"), "--out", str(o),
                                         "--calibration", "sentences"],
                           ("list-config/config.json", "not a JSON object", "list")),
    "config-json-a-string": (lambda f, o: ["export", "--model", str(f["dir"] / "str-config"), "--out", str(o),
                                           "--calibration", "sentences"],
                             ("str-config/config.json", "not a JSON object", "str")),
    "target-not-utf8": (lambda f, o: ["run", "--model", str(f["tiny"]), "--out", str(o), *RUN,
                                      "--target", str(f["dir"] / "latin1.toml")],
                        ("latin1.toml", "not UTF-8", "0xe9")),
    "target-runtime-not-registered": (lambda f, o: ["run", "--model", str(f["tiny"]), "--out", str(o), *RUN,
                                                    "--target", str(f["dir"] / "no-such-runtime.toml")],
                                      ("no-such-runtime.toml:runtime[0].name", "onnxruntim")),
    "inventory-not-utf8": (lambda f, o: ["run", "--model", str(f["tiny"]), "--out", str(o), *RUN,
                                         "--inventory", str(f["dir"] / "inventory.toml")],
                           ("inventory.toml", "not UTF-8")),
    "target-gets-no-artifact": (lambda f, o: ["run", "--model", str(f["tiny"]), "--out", str(o), *RUN,
                                              "--target", "ethos-u55-128"],
                                ("--target ethos-u55-128", "can run nothing", "tflite int8", "formats onnx")),
    "npz-bad-crc": (lambda f, o: ["run", "--model", str(f["tiny"]), "--out", str(o), *RUN,
                                  "--calibration", str(f["crc"])], ("crc.npz:eval.npy", "CRC")),
    "nan-weights-torch": (lambda f, o: ["run", "--model", str(f["nan"]), "--out", str(o), *RUN],
                          ("nan_weights.py:build", "NaN", "'4.weight'")),
    "inf-weights-torch": (lambda f, o: ["run", "--model", str(f["inf"]), "--out", str(o), *RUN],
                          ("inf_weights.py:build", "inf", "'0.bias'")),
    "nan-weights-onnx": (lambda f, o: ["run", "--model", str(f["nan_onnx"]), "--out", str(o), *RUN],
                         ("nan.onnx", "NaN", "initializer 'W'")),
    "validate-sidecar-not-json": (lambda f, o: ["validate", "--model", str(f["tiny"]), "--calibration", "digits",
                                                "--artifact", str(_artifact_with_sidecar(f["dir"], "garbage{"))],
                                  (".onnx.edgekit.json", "not the record edgekit writes", "JSONDecodeError")),
    "validate-sidecar-a-list": (lambda f, o: ["validate", "--model", str(f["tiny"]), "--calibration", "digits",
                                              "--artifact", str(_artifact_with_sidecar(f["dir"], "[1, 2]"))],
                                (".onnx.edgekit.json", "not an object")),
    "input-shape-unknown-name-torch": (lambda f, o: ["run", "--model", str(f["tiny"]), "--out", str(o), *RUN,
                                                     "--input-shape", "pixels=1,3,16,16"],
                                       ("--input-shape pixels=1,3,16,16", "'input'", "got 'pixels'",
                                        "--input-shape 1,3,16,16")),
    "task-text-on-image-model": (lambda f, o: ["run", "--model", str(f["tiny"]), "--out", str(o), *RUN,
                                               "--task", "text-classification"],
                                 ("--task text-classification", "integer token-id input", "float32")),
    "task-image-on-vector-onnx": (lambda f, o: ["run", "--model", str(f["dir"] / "vector.onnx"), "--out", str(o),
                                                *RUN, "--task", "image-classification"],
                                  ("--task image-classification", "float image input", "X float32[1, 8]")),
    "npz-single-array-not-an-input": (lambda f, o: ["run", "--model", str(f["tiny"]), "--out", str(o), *RUN,
                                                    "--calibration", str(f["dir"] / "y.npz")],
                                      ("y.npz:y", "'y' is not a model input", "input", "name it 'input'",
                                       "'calibration' and 'eval'")),
    "checkpoint-int-dtype": (lambda f, o: ["run", "--model", str(f["tiny"]), "--out", str(o), *RUN,
                                           "--checkpoint", str(f["dir"] / "int.safetensors")],
                             ("int.safetensors:4.weight", "int32", "float32")),
    "checkpoint-a-directory": (lambda f, o: ["run", "--model", str(f["tiny"]), "--out", str(o), *RUN,
                                             "--checkpoint", str(f["dir"] / "cats")],
                               ("cats", "is a directory", ".safetensors, .pt or .pth file")),
    "bench-sidecar-missing-keys": (lambda f, o: ["bench", "--model", str(f["tiny"]), "--calibration", "digits",
                                                 "--artifact", str(_artifact_with_sidecar(f["dir"], json.dumps(
                                                     {"format": "onnx"})))],
                                   (".onnx.edgekit.json", "KeyError")),
}


def _one_error_line(capsys: pytest.CaptureFixture[str], code: int) -> str:
    err = re.sub(r"--- Logging error ---.*?\nArguments: [^\n]*\n", "", capsys.readouterr().err, flags=re.S)
    assert "Traceback" not in err, err  # (a library's logging into a stream an earlier test's capsys closed: not ours)
    errors = [line for line in err.splitlines() if line.startswith("edgekit: error:")]
    assert code == 2 and len(errors) == 1, (code, err[-3000:])
    return errors[0]


@pytest.mark.parametrize("case", list(CASES))
def test_bad_option_or_input_is_one_line_and_exit_2(case: str, files: dict[str, Path | str], tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    argv, needles = CASES[case]
    line = _one_error_line(capsys, main(argv(files, tmp_path / "out")))
    for needle in needles:
        assert needle in line, (needle, line)
    assert not (tmp_path / "out" / "report.md").exists()


def test_max_length_beyond_the_models_positions(minilm_dir: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """MiniLM has 512 positions: --max-length 100000 was a torch traceback deep in the embeddings."""
    line = _one_error_line(capsys, main(["run", "--model", str(minilm_dir), "--calibration", "sentences",
                                         "--out", str(tmp_path / "out"), "--max-length", "100000"]))
    assert "--max-length" in line and "1..512" in line and "max_position_embeddings" in line and "100000" in line


def test_nan_weights_in_a_hugging_face_folder_name_the_tensor(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    """A real (tiny) BERT saved with save_pretrained, one NaN in its word embeddings: the export "disagreed with
    the source" on every item, blaming the exporter."""
    import torch
    from transformers import BertConfig, BertModel

    model = BertModel(BertConfig(vocab_size=32, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                                 intermediate_size=16, max_position_embeddings=128))
    with torch.no_grad():
        model.embeddings.word_embeddings.weight[3, 2] = float("nan")
    model.save_pretrained(tmp_path / "bert")
    line = _one_error_line(capsys, main(["export", "--model", str(tmp_path / "bert"), "--calibration", "sentences",
                                         "--out", str(tmp_path / "out")]))
    assert str(tmp_path / "bert") in line and "NaN" in line and "embeddings.word_embeddings.weight" in line, line


def _tiny_bert(folder: Path) -> Path:
    """A real (tiny) BERT text classifier saved with save_pretrained (no tokenizer: the errors come first)."""
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig(vocab_size=32, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=16, max_position_embeddings=128, num_labels=2)
    BertForSequenceClassification(config).save_pretrained(folder)
    return folder


@pytest.mark.parametrize(("extra", "needles"), [
    (["--input-shape", "input_ids=1,7"], ("--input-shape input_ids=1,7", "Hugging Face text model",
                                          "--max-length 7")),
    (["--task", "image-classification"], ("--task image-classification", "config.json",
                                          "BertForSequenceClassification", "--task text-classification or no --task")),
], ids=["input-shape", "image-task"])
def test_hugging_face_folder_refuses_input_shape_and_a_contradicting_task(
        extra: list[str], needles: tuple[str, ...], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--input-shape input_ids=1,7`` was ignored (max_length stayed 64); ``--task image-classification`` on a text
    model was transformers' "Unrecognized configuration class" with the hint "are the weight files complete?"."""
    bert = _tiny_bert(tmp_path / "bert")
    line = _one_error_line(capsys, main(["export", "--model", str(bert), "--calibration", "sentences",
                                         "--out", str(tmp_path / "out"), *extra]))
    for needle in needles:
        assert needle in line, (needle, line)
    assert "weight files" not in line


def test_a_hugging_face_user_error_is_one_stderr_line(tmp_path: Path) -> None:
    """torchao's "Failed to load ..._C_*.so" and two torch ``_pytree`` warnings came before the one error line of every
    Hugging Face command (in a fresh process: torchao is imported once)."""
    import subprocess
    import sys

    bert = _tiny_bert(tmp_path / "bert")
    done = subprocess.run([sys.executable, "-m", "edgekit", "export", "--model", str(bert), "--calibration",
                           str(tmp_path / "none.npz"), "--out", str(tmp_path / "out")], capture_output=True, text=True,
                          timeout=600, check=False)
    assert done.returncode == 2, done.stderr[-3000:]
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgekit: error:"), done.stderr[-3000:]


def test_class_folders_by_name_are_labelled_in_sorted_order_and_the_report_says_so(
        files: dict[str, Path | str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``eval/cat``, ``eval/dog`` for a 10-class model without class names: labels 0 and 1 by sorted order, as
    before, but said in the report (it was silent); folders named by numbers keep their number."""
    from edgekit.data import load_dataset

    out = tmp_path / "out"
    code = main(["run", "--model", str(files["tiny"]), "--out", str(out), *RUN, "--calibration",
                 str(files["dir"] / "cats")])
    assert code == 0, capsys.readouterr().err[-3000:]
    assert "labels from folder names by sorted order: cat=0, dog=1" in (out / "report.md").read_text()
    digits = _image_class_folders(tmp_path / "digits", ("3", "7", "10"), n=1)
    ds = load_dataset(digits)
    assert sorted(ds.labels("eval").tolist()) == [3, 7, 10] and "label_names" not in ds.manifest
    assert "labels: the class folder names as class numbers (3, 7, 10)" in ds.describe()["split_rule"]


def _tiny_vit(folder: Path, classes: tuple[str, ...]) -> Path:
    from transformers import ViTConfig, ViTForImageClassification

    config = ViTConfig(image_size=16, patch_size=8, num_channels=3, hidden_size=8, num_hidden_layers=1,
                       num_attention_heads=2, intermediate_size=16, id2label=dict(enumerate(classes)),
                       label2id={c: i for i, c in enumerate(classes)})
    ViTForImageClassification(config).save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(json.dumps(
        {"size": {"height": 16, "width": 16}, "image_mean": [0.5] * 3, "image_std": [0.5] * 3}))
    return folder


def test_class_folders_that_are_not_the_models_class_names_are_refused(
        files: dict[str, Path | str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A Hugging Face image classifier with id2label ant, bee given ``eval/cat``, ``eval/dog``: mapped silently to
    0, 1; now refused naming the folder and the model's classes. A folder order that differs from id2label's is
    refused too (its labels would be the wrong classes); the same order is accepted."""
    from edgekit.data import check_label_names, load_dataset
    from edgekit.errors import CalibrationError

    vit = _tiny_vit(tmp_path / "vit", ("ant", "bee"))
    line = _one_error_line(capsys, main(["run", "--model", str(vit), "--out", str(tmp_path / "out"), *RUN,
                                         "--calibration", str(files["dir"] / "cats")]))
    assert "class folder 'cat'" in line and "0=ant, 1=bee" in line and "class index" in line, line
    ds = load_dataset(files["dir"] / "cats")
    check_label_names(ds, ("cat", "dog"), "m")
    with pytest.raises(CalibrationError, match="folder 'cat' would be label 0 but is class 1"):
        check_label_names(ds, ("dog", "cat"), "m")
