"""The manifest's one module writes what it reads: a ManifestRecord written is read back by read_manifest
with every field readers use, and the file keeps format 2's layout (format and producer first)."""

from __future__ import annotations

import json

from odexport.inputs import Preprocessing
from odexport.manifest import (MANIFEST_FORMAT, MANIFEST_NAME, MANIFEST_PRODUCER, LayerRecord, ManifestRecord,
                               TensorRecord, read_manifest)
from odexport.staging import foreign_reason


def _record(**changes) -> ManifestRecord:
    fields = dict(
        source={"path": "/data/net.pth.tar", "sha256": "ab" * 32, "format": "official-checkpoint"},
        model={"arch": "od_resnet18"}, target="onnxruntime", runs_on=("onnxruntime",), lowering="decomposed",
        export={"exporter": "torchscript", "opset": 17}, precision="fp16", layout="flat", simplified=True,
        dynamic={"batch": True, "size": False}, files=("model.onnx", "weights/extra.bin"),
        eval_semantics={"attention_batchnorm": "skip", "temperature": 2.5}, notes=("a note",),
        inputs=(TensorRecord("input", ("batch", 1, 40, 48)),),
        outputs=(TensorRecord("logits", ("batch", 10)), TensorRecord("pooled", ("batch", 64))),
        preprocessing=Preprocessing(color="L", mean=(0.45,), std=(0.22,)),
        odconv_layers=({"path": "layer1.conv", "folded_batchnorm": "layer1.bn"},), generic_layers=(),
        versions={"odexport": "0"}, parity={"input_shapes": [[1, 40, 48], [1, 53, 59]]}, quantization=None)
    return ManifestRecord(**(fields | changes))


def _write_with_files(record: ManifestRecord, directory) -> None:
    for name in record.files:
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_bytes(b"")
    record.write(directory)


def test_a_written_record_reads_back_with_every_field_readers_use(tmp_path):
    record = _record()
    _write_with_files(record, tmp_path)
    manifest = read_manifest(tmp_path)
    assert (manifest.format, manifest.producer) == (MANIFEST_FORMAT, MANIFEST_PRODUCER)
    assert manifest.files == record.files and manifest.precision == record.precision
    assert manifest.inputs == record.inputs and manifest.outputs == record.outputs
    assert manifest.preprocessing == record.preprocessing
    assert manifest.odconv_layers == (LayerRecord("layer1.conv", "layer1.bn"),)
    assert (manifest.attention_batchnorm, manifest.temperature) == ("skip", 2.5)
    assert manifest.source_sha256 == record.source["sha256"]
    assert manifest.checked_input_shapes == ((1, 40, 48), (1, 53, 59))
    assert manifest.runs_on == record.runs_on and manifest.target == "onnxruntime"
    assert manifest.lowering == "decomposed"


def test_the_file_starts_with_format_and_producer_and_keeps_every_field(tmp_path):
    record = _record(runs_on=None, preprocessing=None)
    _write_with_files(record, tmp_path)
    text = (tmp_path / MANIFEST_NAME).read_text()
    data = json.loads(text)
    assert list(data)[:2] == ["format", "producer"] and data["format"] == 2 and data["producer"] == "odexport"
    assert data == record.to_json() and data["runs_on"] is None and data["preprocessing"] is None
    assert text == json.dumps(record.to_json(), indent=2) + "\n"
    read = read_manifest(tmp_path)
    assert read.runs_on is None and read.preprocessing is None


def test_a_written_artifact_is_one_odexport_may_replace(tmp_path):
    _write_with_files(_record(), tmp_path)
    assert foreign_reason(tmp_path) is None
