"""compare_models and `odexport profile` on the command line: a row per lowering and runtime next to the
static twin, and clean exit codes on bad input."""

from __future__ import annotations

import json

import matplotlib.image
import pytest
import torch
from typer.testing import CliRunner

from conftest import QUICK, SIZE
from odexport.cli.app import app
from odexport.lowering import list_lowerings
from odexport.profiling import Budget
from odexport.profiling.comparison import EAGER, NAIVE, STATIC, CompareReport, compare_models
from placement import Placement, PlacementLog
from odexport.profiling.plot import comparison_figure, plot_comparison

runner = CliRunner()


class TinyTwin(torch.nn.Module):
    """TinyODNet's shape with plain convolutions."""

    def __init__(self) -> None:
        super().__init__()
        nn = torch.nn
        self.body = nn.Sequential(nn.Conv2d(3, 12, 3, 2, 1), nn.ReLU(), nn.Conv2d(12, 12, 3, 1, 1), nn.ReLU(),
                                  nn.Conv2d(12, 12, 3, 2, 1, groups=12), nn.ReLU(), nn.Conv2d(12, 20, 1), nn.ReLU())
        self.head = nn.Linear(20, 5)

    def forward(self, x):
        return self.head(self.body(x).mean(dim=(2, 3)))


@pytest.fixture(scope="module")
def comparison(tiny_model):
    return compare_models(tiny_model, TinyTwin().eval(), name="TinyODNet", twin_name="TinyTwin",
                          precisions=("fp32", "bf16"), batch_sizes=(1,), imgsz=SIZE,
                          budget=Budget(iterations=4, seconds=0.1, warmup=1, min_iterations=2), rounds=2)


def test_a_row_per_variant_runtime_and_precision(comparison):
    keys = {"onnxruntime fp32 b1", "openvino fp32 b1", "openvino bf16 b1"}
    for variant in [STATIC, *list_lowerings(), "auto", NAIVE]:
        exported = {row.run.key for row in comparison.rows if row.variant == variant and row.run.runtime != "pytorch"}
        assert exported == keys, variant
    eager = {row.variant for row in comparison.rows if row.run.key == "pytorch fp32 b1"}
    assert eager == {STATIC, EAGER}
    for row in comparison.rows:
        assert row.ratio is not None and row.ratio > 0
        assert row.run.latency.count >= 2  # two rounds, at least one call each
        if row.variant == STATIC:
            assert row.ratio == 1.0
        else:
            twin = comparison.row(STATIC, row.run.key)
            assert row.ratio == pytest.approx(row.run.latency.median_ms / twin.run.latency.median_ms)
    # Nothing failed; a note on where the CPUs sat depends on the machine at the time, not on the comparison.
    assert [note for note in comparison.notes if "CPUs apart" not in note] == []


def test_without_a_probe_no_placement_is_recorded(comparison):
    assert all(row.placement is None for row in comparison.rows)


@pytest.mark.usefixtures("two_run_cpus")
def test_with_the_benchmarks_probe_each_group_records_where_its_cpus_sat(tiny_model):
    report = compare_models(tiny_model, TinyTwin().eval(), name="TinyODNet", twin_name="TinyTwin",
                            precisions=("fp32",), imgsz=SIZE, lowerings=["decomposed"], naive=False,
                            budget=Budget(iterations=2, seconds=0.05, warmup=1, min_iterations=1), rounds=1,
                            placements=PlacementLog())
    by_key = {}
    for row in report.rows:
        placement = Placement(**row.placement)
        assert placement.before_ns > 0 and placement.after_ns > 0
        by_key.setdefault(row.run.key, set()).add(placement)
    # One probe pair per group: every variant of a runtime, precision and batch shares it.
    assert all(len(placements) == 1 for placements in by_key.values())
    assert len({p for placements in by_key.values() for p in placements}) == len(by_key)


def measure_once(model, placements, attempts):
    return compare_models(model, TinyTwin().eval(), name="TinyODNet", twin_name="TinyTwin", runtimes=("onnxruntime",),
                          precisions=("fp32",), imgsz=SIZE, lowerings=["decomposed"], naive=False, eager=False,
                          budget=Budget(iterations=2, seconds=0.05, warmup=1, min_iterations=1), rounds=1,
                          attempts=attempts, placements=placements)


@pytest.mark.usefixtures("two_run_cpus")
@pytest.mark.parametrize("earlier_level_ns, measurements", [(1.0, 2), (1e9, 1)])
def test_a_group_measured_apart_is_measured_again(tiny_model, earlier_level_ns, measurements):
    # An earlier benchmark's probes set the other level: far below any real round trip, every probe now
    # reads apart; far above it, every probe reads together.
    placements = PlacementLog([Placement(earlier_level_ns, earlier_level_ns)])
    report = measure_once(tiny_model, placements, attempts=2)
    assert len(placements.placements) == 1 + measurements
    assert {row.variant for row in report.rows} == {STATIC, "decomposed"}
    assert all(Placement(**row.placement) == placements.placements[-1] for row in report.rows)
    apart_notes = [note for note in report.notes if "CPUs apart" in note]
    assert apart_notes == (["onnxruntime fp32 batch 1: measured with the CPUs apart "
                            f"({placements.placements[-1].describe()}) in all 2 attempts"] if measurements == 2 else [])


def test_comparison_reads_back_and_plots(comparison, tmp_path):
    path = comparison.write_json(tmp_path / "compare.json")
    assert CompareReport.from_dict(json.loads(path.read_text())) == comparison
    image = matplotlib.image.imread(plot_comparison(comparison, tmp_path / "compare.png"))
    assert image.shape[1] > 800 and image.std() > 0.05


def test_the_comparison_chart_draws_every_variant_against_the_twin_with_its_ratio(comparison):
    axis = comparison_figure(comparison).axes[0]
    assert "TinyODNet vs its static twin TinyTwin" in axis.get_title() and f"{SIZE}x{SIZE}" in axis.get_title()
    groups = [label.get_text() for label in axis.get_xticklabels()]
    assert sorted(group.split("\n")[0] for group in groups) == sorted({row.run.key for row in comparison.rows})
    legend = {text.get_text() for text in axis.get_legend().get_texts()}
    assert {row.variant for row in comparison.rows} <= legend and "static twin = 1" in legend
    written = [text.get_text() for text in axis.texts if text.get_text()]
    assert sorted(written) == sorted(f"{row.ratio:.2f}x" for row in comparison.rows)


def run_cli(*args):
    return runner.invoke(app, [str(a) for a in args])


def quick_options():
    return ["-n", str(QUICK["iterations"]), "--time", str(QUICK["time"])]


def test_cli_profile_writes_json_and_plot(tiny_artifacts, tmp_path):
    result = run_cli("profile", tiny_artifacts["onnx"], "--runtime", "openvino", "--precision", "fp32,bf16", "--layers",
                     "--top", "3", "--json", tmp_path / "p.json", "--plot", tmp_path / "p.png", *quick_options())
    assert result.exit_code == 0, result.stderr
    assert "median ms" in result.stdout and "odconv attention" in result.stdout
    data = json.loads((tmp_path / "p.json").read_text())
    assert [(run["runtime"], run["precision"]) for run in data["runs"]] == [("openvino", "fp32"), ("openvino", "bf16")]
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow  # converts and runs od_resnet18 several times: minutes on 2 shared cores
def test_cli_compare_on_a_checkpoint(official_checkpoint, tmp_path):
    checkpoint = official_checkpoint("od_resnet18")
    result = run_cli("profile", checkpoint, "--compare", "--imgsz", SIZE, "--runtime", "onnxruntime",
                     "--precision", "fp32", "--lowering", "decomposed", "--json", tmp_path / "c.json", *quick_options())
    assert result.exit_code == 0, result.stderr
    assert "resnet18" in result.stdout and "naive export" in result.stdout
    rows = json.loads((tmp_path / "c.json").read_text())["rows"]
    assert {(row["variant"], row["run"]["runtime"]) for row in rows} == {
        (STATIC, "onnxruntime"), ("decomposed", "onnxruntime"), (NAIVE, "onnxruntime"), (STATIC, "pytorch"),
        (EAGER, "pytorch")}


@pytest.mark.parametrize("args, phrase", [
    (["{missing}"], "no such file"),
    (["{onnx}", "--precision", "int4"], "unknown precision"),
    (["{onnx}", "--runtime", "tensorrt"], "unknown runtime"),
    (["{onnx}", "--hint", "fast"], "unknown performance hint"),
    (["{onnx}", "--runtime", "onnxruntime", "--precision", "bf16"], "onnxruntime does not offer bf16"),
    (["{onnx}", "--compare"], "a comparison needs a checkpoint"),
    (["{onnx}", "--plot", "{tmp}/chart.jpg"], "written as PNG"),
])
def test_cli_bad_input_exits_2(tiny_artifacts, tmp_path, args, phrase):
    values = {"missing": tmp_path / "missing.onnx", "onnx": tiny_artifacts["onnx"], "tmp": tmp_path}
    result = run_cli("profile", *[arg.format(**values) for arg in args], *quick_options())
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[-2].startswith("error: ") and lines[-1].startswith("  hint: "), result.stderr
    assert phrase in result.stderr


def _operation_types(ir_file) -> set[str]:
    import openvino as ov

    return {op.get_type_name() for op in ov.Core().read_model(str(ir_file)).get_ops()}


def test_int8_compares_files_quantized_the_same_way(tiny_model, tmp_path):
    from odexport.console import SilentReporter
    from odexport.profiling.comparison import _exporters

    notes: list[str] = []
    exporters = _exporters(tiny_model, TinyTwin().eval(), ["decomposed"], True, (SIZE, SIZE), tmp_path,
                           SilentReporter(), notes)
    for variant in (STATIC, "decomposed"):
        quantized = exporters[variant](1, "openvino", "int8")
        assert quantized.suffix == ".xml" and "FakeQuantize" in _operation_types(quantized), variant
        assert "FakeQuantize" not in _operation_types(exporters[variant](1, "openvino", "fp32")), variant
    assert notes == []


def test_int8_rows_leave_the_naive_export_out(tiny_model):
    report = compare_models(tiny_model, TinyTwin().eval(), name="TinyODNet", twin_name="TinyTwin",
                            runtimes=("openvino",), precisions=("int8",), batch_sizes=(1,), imgsz=SIZE,
                            lowerings=["decomposed"], eager=False,
                            budget=Budget(iterations=4, seconds=0.1, warmup=1, min_iterations=2), rounds=2)
    assert {(row.variant, row.run.key) for row in report.rows} == {
        (STATIC, "openvino int8 b1"), ("decomposed", "openvino int8 b1")}
    assert all(row.ratio > 0 for row in report.rows)
