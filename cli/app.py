"""The `odexport` command: a thin Typer layer over the library. It parses options, calls one library
function, renders the result, and maps odexport errors to exit codes (2 bad input, 1 parity failure).

Each command imports the library inside its own function: `odexport -h`, `--version` and shell completion
must answer without importing PyTorch and the runtimes (seconds)."""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path
from typing import Annotated, Callable, Optional

import typer
from rich.console import Console
from rich.markup import escape

from odexport.errors import OdexportError

from . import render

app = typer.Typer(
    add_completion=True,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Export ODConv models to ONNX, ONNX Runtime and OpenVINO, and prove they match PyTorch.",
)


def stdout() -> Console:
    """A console for this command's output, sized by the terminal (COLUMNS) as it is now, not as it was
    when the module was imported."""
    return Console(highlight=False)


def stderr() -> Console:
    return Console(stderr=True, highlight=False)


CheckpointArg = Annotated[Path, typer.Argument(help="Official training checkpoint, state dict, or TorchScript archive.")]
InspectArg = Annotated[Path, typer.Argument(help="A checkpoint (as for convert), or an exported artifact: a convert output directory, a .onnx or an .xml.")]
ArchOpt = Annotated[Optional[str], typer.Option("--arch", help="Architecture name; inferred from the weights when omitted.")]
UnsafePickleOpt = Annotated[
    bool,
    typer.Option(
        "--unsafe-pickle",
        help="Allow a checkpoint that pickles whole Python objects (torch.save(model)). Unpickling runs "
        "arbitrary code from the file: use only on files you trust.",
    ),
]
ImgszOpt = Annotated[str, typer.Option("--imgsz", help="Input size: an int, or H,W.")]
ChannelsOpt = Annotated[Optional[int], typer.Option("--channels", help="Input channels, e.g. 1 for grey images [default: what the model's first convolution takes, else 3].")]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show the full traceback on errors.")]
TemperatureOpt = Annotated[Optional[float], typer.Option("--temperature", help="Set the attention temperature of every recognised layer that keeps one outside the state dict (reported by inspect).")]
AllowDegenerateOpt = Annotated[bool, typer.Option("--allow-degenerate", help="Accept a parity pass on PyTorch outputs that cannot tell a right artifact from a wrong one (all near zero, constant, or the same for every input: an untrained model); refused otherwise.")]
AttentionBatchnormOpt = Annotated[Optional[str], typer.Option("--attention-batchnorm", help="For variants that skip their attention BatchNorm at batch 1: export 'apply' (running statistics, the batch > 1 behaviour) or 'skip' (the batch 1 behaviour).")]


def _show_version(value: bool) -> None:
    if value:
        from odexport import __version__
        from odexport.manifest import versions

        found = ", ".join(f"{name} {version}" for name, version in versions().items() if name != "odexport" and version)
        stdout().print(f"odexport {__version__} ({found})", soft_wrap=True)
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[bool, typer.Option("--version", "-V", callback=_show_version, is_eager=True,
                                          help="Show the version of odexport and of the runtimes it uses, and exit.")] = False,
) -> None:
    """Export ODConv models to ONNX, ONNX Runtime and OpenVINO, and prove they match PyTorch."""


def _run(action: Callable[[], int | None], debug: bool) -> None:
    """Run a command body; turn odexport errors into one line on stderr and an exit code."""
    try:
        code = action() or 0
    except OdexportError as error:
        if debug:
            traceback.print_exc()
        stderr().print(f"[bold red]error:[/bold red] {escape(error.message)}", soft_wrap=True)
        if error.hint:
            stderr().print(f"  hint: {escape(error.hint)}", soft_wrap=True)
        raise typer.Exit(error.exit_code) from None
    except KeyboardInterrupt:
        stderr().print("interrupted; nothing was left half-written")
        raise typer.Exit(130) from None
    except Exception as error:
        if debug:
            traceback.print_exc()
        stderr().print(f"[bold red]internal error:[/bold red] {type(error).__name__}: {escape(str(error))}", soft_wrap=True)
        stderr().print("  hint: rerun with --debug and report the traceback")
        raise typer.Exit(3) from None
    raise typer.Exit(code)


@app.command()
def convert(
    checkpoint: CheckpointArg,
    target: Annotated[str, typer.Option("--target", "-t", help="onnx, onnxruntime or openvino.")] = "openvino",
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Output directory [default: <checkpoint stem>_<target>, plus _<precision> when not fp32].")] = None,
    imgsz: ImgszOpt = "224",
    channels: ChannelsOpt = None,
    batch: Annotated[Optional[str], typer.Option("--batch", help="Batch size: an int, or 'dynamic'. [default: 1 under auto (convert says so); dynamic for decomposed, depthwise-taps and custom-op; 1 for the other lowerings]")] = None,
    lowering: Annotated[Optional[str], typer.Option("--lowering", help="How ODConv layers are written in ONNX: auto (timed per layer on the target runtime), decomposed, depthwise-taps, custom-op, dynamic-weight or folded-weight. [default: auto]")] = None,
    dynamic_size: Annotated[bool, typer.Option("--dynamic-size", help="Symbolic input height and width.")] = False,
    simplify: Annotated[bool, typer.Option("--simplify/--no-simplify", help="Simplify the graph with onnxsim.")] = True,
    arch: ArchOpt = None,
    unsafe_pickle: UnsafePickleOpt = False,
    verify: Annotated[bool, typer.Option("--verify/--no-verify", help="Check parity against PyTorch after converting.")] = True,
    precision: Annotated[str, typer.Option("--precision", help="fp32, fp16, bf16 (openvino) or int8; parity uses the precision's tolerance preset.")] = "fp32",
    calibration: Annotated[Optional[str], typer.Option("--calibration", help="For int8: a folder of images like the model's inputs, or 'synthetic'.")] = None,
    calibration_size: Annotated[int, typer.Option("--calibration-size", help="Number of calibration images used.")] = 32,
    layout: Annotated[str, typer.Option("--layout", help="flat, or ovms (openvino: an OpenVINO Model Server repository <name>/1/model.xml).")] = "flat",
    temperature: TemperatureOpt = None,
    attention_batchnorm: AttentionBatchnormOpt = None,
    exporter: Annotated[Optional[str], typer.Option("--exporter", help="PyTorch's ONNX exporter: torchscript (torch.onnx.export(dynamo=False)) or dynamo (torch.export-based). [default: torchscript, see docs/exporters.md]")] = None,
    opset: Annotated[Optional[int], typer.Option("--opset", help="ONNX opset: 17-20 with torchscript, 18-23 with dynamo. [default: the exporter's lowest]")] = None,
    allow_degenerate: AllowDegenerateOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Convert a checkpoint (or a file holding a whole module) to a deployable artifact and check it
    against PyTorch."""
    from odexport.api import convert_file
    from odexport.console import ConsoleReporter
    from odexport.pipeline import convert_options

    def action() -> None:
        options = convert_options(
            target=target, output=output, imgsz=imgsz, channels=channels, batch=batch, lowering=lowering,
            dynamic_size=dynamic_size, simplify=simplify, arch=arch, unsafe_pickle=unsafe_pickle, verify=verify,
            precision=precision, calibration=calibration, calibration_size=calibration_size, layout=layout,
            temperature=temperature, attention_batchnorm=attention_batchnorm, exporter=exporter, opset=opset,
            allow_degenerate=allow_degenerate,
        )
        render.conversion(stdout(), convert_file(checkpoint, options, reporter=ConsoleReporter()))

    _run(action, debug)


@app.command()
def inspect(
    checkpoint: InspectArg,
    imgsz: ImgszOpt = "224",
    arch: ArchOpt = None,
    unsafe_pickle: UnsafePickleOpt = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables.")] = False,
    debug: DebugOpt = False,
) -> None:
    """Show what a checkpoint holds (architecture, hyper-parameters, size, ODConv layers), what a file
    holding a whole module holds (each dynamic convolution, the adapter that recognised it, and what no
    adapter confirmed: taken by the generic path, probed at --imgsz, or refused and why), or what an
    artifact holds (a convert output directory, a .onnx or an .xml: lowering, ops, nodes per dynamic
    convolution, and what its manifest records)."""
    from odexport.api import ModuleInspection
    from odexport.api import inspect as run_inspect
    from odexport.inspection import OnnxSummary, summarize_artifact
    from odexport.manifest import MODEL_SUFFIXES

    def action() -> None:
        if checkpoint.is_dir() or checkpoint.suffix in MODEL_SUFFIXES:  # an artifact: its manifest too, checked
            _show(summarize_artifact(checkpoint), as_json, render.artifact_inspection)
            return
        found = run_inspect(checkpoint, imgsz=imgsz, arch=arch, unsafe_pickle=unsafe_pickle)
        table = (render.onnx_inspection if isinstance(found, OnnxSummary) else
                 render.module_inspection if isinstance(found, ModuleInspection) else render.inspection)
        _show(found.to_dict(), as_json, table)

    _run(action, debug)


def _show(report: dict, as_json: bool, table: Callable) -> None:
    """One JSON object on stdout, or the report rendered as tables."""
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    else:
        table(stdout(), report)


@app.command()
def verify(
    artifact: Annotated[Path, typer.Argument(help="An output directory of convert, a .onnx, or an OpenVINO .xml.")],
    checkpoint: Annotated[Path, typer.Option("--checkpoint", "-c", help="The checkpoint the artifact was converted from (the PyTorch reference).")],
    runtime: Annotated[Optional[str], typer.Option("--runtime", "-r", help="onnxruntime, openvino, or all (default: the one that fits the artifact).")] = None,
    images: Annotated[Optional[Path], typer.Option("--images", help="A folder of your images, added to the bundled photographs and random inputs.")] = None,
    batch: Annotated[Optional[list[str]], typer.Option("--batch", help="Batch sizes for a dynamic-batch artifact; repeat or comma-separate: 1,3,8 (default: 1 and 3).")] = None,
    imgsz: Annotated[Optional[str], typer.Option("--imgsz", help="Input size when the artifact's H/W are dynamic: an int, or H,W.")] = None,
    precision: Annotated[Optional[str], typer.Option("--precision", help="Tolerance preset (each precision's in odexport.precisions): fp32, fp16, bf16, int8 [default: the manifest's precision, else fp32].")] = None,
    atol: Annotated[Optional[float], typer.Option("--atol", help="Absolute tolerance, replacing the preset's.")] = None,
    rtol: Annotated[Optional[float], typer.Option("--rtol", help="Tolerance relative to max |PyTorch output|, replacing the preset's.")] = None,
    layers: Annotated[bool, typer.Option("--layers", help="Compare every layer's output even when the outputs pass.")] = False,
    json_file: Annotated[Optional[Path], typer.Option("--json", help="Write the report as JSON to this file.")] = None,
    junit_file: Annotated[Optional[Path], typer.Option("--junit", help="Write a JUnit XML report (a testcase per runtime and output).")] = None,
    warn_only: Annotated[bool, typer.Option("--warn-only", help="Exit 0 even when parity fails (still reports FAILED).")] = False,
    allow_degenerate: AllowDegenerateOpt = False,
    arch: ArchOpt = None,
    unsafe_pickle: UnsafePickleOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Check an artifact against its checkpoint in PyTorch; on failure, name the first diverging layer.
    Exit 0 passed, 1 parity failure, 2 bad input."""
    from odexport.console import ConsoleReporter
    from odexport.verification import verify_artifact, write_reports
    from odexport.writable import check_writable_file

    def action() -> int:
        for option, path in (("--json", json_file), ("--junit", junit_file)):
            if path:
                check_writable_file(path, option)  # before the reference is loaded and run
        report = verify_artifact(
            artifact, checkpoint, runtime=runtime, images=images, batch_sizes=batch, imgsz=imgsz,
            precision=precision, atol=atol, rtol=rtol, layers=layers, arch=arch, unsafe_pickle=unsafe_pickle,
            allow_degenerate=allow_degenerate, reporter=ConsoleReporter(),
        )
        render.verification(stdout(), report, all_layers=layers)
        write_reports(report, json_path=json_file, junit_path=junit_file)
        if not report.passed and warn_only:
            stderr().print(f"[bold yellow]warning:[/bold yellow] parity check failed on {'; '.join(report.failures())} "
                         "(--warn-only: exit 0)", soft_wrap=True)
        elif not report.passed:
            report.raise_for_failure()  # ParityError: one error line, exit 1
        return 0

    _run(action, debug)


@app.command()
def profile(
    source: Annotated[Path, typer.Argument(help="A convert output directory, a .onnx, an OpenVINO .xml, or a checkpoint (converted on the fly).")],
    runtime: Annotated[str, typer.Option("--runtime", "-r", help="onnxruntime, openvino, or all (every runtime that reads the file).")] = "all",
    hint: Annotated[str, typer.Option("--hint", help="OpenVINO performance hint: latency or throughput (throughput: images/s with parallel requests).")] = "latency",
    threads: Annotated[int, typer.Option("--threads", help="Inference threads per runtime; 0 lets each runtime choose.")] = 2,
    streams: Annotated[Optional[int], typer.Option("--streams", help="OpenVINO streams (default: what the hint chooses).")] = None,
    batch: Annotated[Optional[list[str]], typer.Option("--batch", help="Batch sizes for a dynamic-batch model; repeat or comma-separate: 1,8 (default: 1).")] = None,
    precision: Annotated[Optional[list[str]], typer.Option("--precision", help="Precision: fp32, bf16 (OpenVINO inference precision), int8 (an int8 artifact; with --compare, every variant quantized the same way); repeat or comma-separate. [default: fp32; fp32,bf16 with --compare]")] = None,
    iterations: Annotated[int, typer.Option("--iterations", "-n", help="At most this many timed calls per configuration.")] = 200,
    seconds: Annotated[float, typer.Option("--time", help="At most this many seconds of timed calls per configuration.")] = 10.0,
    imgsz: Annotated[Optional[str], typer.Option("--imgsz", help="Input size: an int, or H,W (default: the artifact's, or 224).")] = None,
    lowering: Annotated[Optional[str], typer.Option("--lowering", help="How a checkpoint's ODConv layers are written (as for convert) [default: auto]; with --compare, the lowerings to compare, comma-separated [default: all and auto].")] = None,
    layers: Annotated[bool, typer.Option("--layers", help="Per-layer breakdown from OpenVINO performance counters and ONNX Runtime profiling.")] = False,
    top: Annotated[int, typer.Option("--top", help="Layers shown per configuration with --layers.")] = 15,
    compare: Annotated[bool, typer.Option("--compare", help="For a checkpoint: every lowering, PyTorch eager, the naive export and the static twin, side by side.")] = False,
    json_file: Annotated[Optional[Path], typer.Option("--json", help="Write the results as JSON to this file.")] = None,
    plot_file: Annotated[Optional[Path], typer.Option("--plot", help="Write a chart to this .png file.")] = None,
    arch: ArchOpt = None,
    unsafe_pickle: UnsafePickleOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Measure latency (median, mean, p90, p99, min, max), throughput, compile and first-inference time and
    peak memory in ONNX Runtime and OpenVINO; with --layers, where the time goes per PyTorch module."""
    from odexport.console import ConsoleReporter
    from odexport.pipeline import DEFAULT_LOWERING
    from odexport.profiling import profile as run_profile
    from odexport.profiling.comparison import compare as run_compare
    from odexport.profiling.comparison import parse_runtimes
    from odexport.profiling.measure import Budget
    from odexport.profiling.plot import check_plot_path
    from odexport.writable import check_writable_file

    def action() -> None:
        if plot_file:
            check_writable_file(check_plot_path(plot_file), "--plot")  # before minutes of measuring, not after
        if json_file:
            check_writable_file(json_file, "--json")
        reporter = ConsoleReporter(stderr())
        with reporter.steps("profiling") as advance:
            if compare:
                from odexport.verification.options import parse_batches

                result = run_compare(
                    source, arch=arch, unsafe_pickle=unsafe_pickle,
                    runtimes=parse_runtimes(runtime), precisions=_split(precision) or ("fp32", "bf16"),
                    batch_sizes=parse_batches(batch) or (1,), imgsz=imgsz or "224", threads=threads or None,
                    budget=Budget(iterations=iterations, seconds=seconds), lowerings=_split([lowering]) if lowering else None,
                    reporter=reporter, progress=advance)
            else:
                result = run_profile(
                    source, runtime=runtime, precision=_split(precision) or "fp32", hint=hint, threads=threads,
                    streams=streams, batch=batch, imgsz=imgsz, iterations=iterations, time=seconds,
                    layers=layers, lowering=lowering or DEFAULT_LOWERING, arch=arch, unsafe_pickle=unsafe_pickle,
                    reporter=reporter, progress=advance)
        _show_profile(result, compare, top, json_file, plot_file)

    _run(action, debug)


def _show_profile(result, compare: bool, top: int, json_file: Path | None, plot_file: Path | None) -> None:
    """A profile or comparison as tables, then the JSON and chart files asked for."""
    from odexport.profiling.plot import plot_comparison, plot_profile

    if compare:
        render.comparison(stdout(), result)
    else:
        render.profile(stdout(), result, top=top)
    if json_file:
        stdout().print(f"Wrote {result.write_json(json_file)}")
    if plot_file:
        written = plot_comparison(result, plot_file) if compare else plot_profile(result, plot_file)
        stdout().print(f"Wrote {written}")


def _split(values: list[str] | None) -> tuple[str, ...]:
    """["fp32,bf16", "fp32"] -> ("fp32", "bf16")."""
    return tuple(dict.fromkeys(part.strip() for value in values or () for part in value.split(",") if part.strip()))


@app.command()
def demo(
    output: Annotated[Path, typer.Option("--output", "-o", help="Where the demo writes its files.")] = Path("demo"),
    kernel_num: Annotated[int, typer.Option("--kernel-num", help="ODConv kernel_num of the demo model.")] = 1,
    imgsz: ImgszOpt = "224",
    debug: DebugOpt = False,
) -> None:
    """Build a seeded od_resnet18, save it as an official checkpoint, convert it to OpenVINO, check parity."""
    from odexport.console import ConsoleReporter
    from odexport.demo import run_demo

    def action() -> None:
        checkpoint, result = run_demo(output, kernel_num=kernel_num, imgsz=imgsz, reporter=ConsoleReporter())
        stdout().print(f"Demo checkpoint (official training format): {checkpoint}")
        render.conversion(stdout(), result)

    _run(action, debug)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
