"""Rich renderings of library results; the library computes, this only prints."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from odexport.pipeline import ConversionResult


def _millions(count: int) -> str:
    return f"{count / 1e6:.2f}M"


def parity_table(report) -> Table:
    sizes = ", ".join(f"{shape[-2]}x{shape[-1]}" for shape in report.input_shapes)
    batches = ", ".join(map(str, report.batch_sizes))
    table = Table(title=f"Parity: PyTorch vs {report.runtime} ({report.samples} inputs at {sizes}; batch {batches})")
    for column in ("output", "shape", "max abs err", "limit", "max rel err", "top-1 agree", "result"):
        table.add_column(column)
    for out in report.outputs:
        agree = "-" if out.top1_agreement is None else f"{out.top1_agreement:.0%}"
        result = "[green]PASSED[/green]" if out.passed else "[red]FAILED[/red]"
        table.add_row(out.name, str(list(out.shape)), f"{out.max_abs_error:.2e}", f"{out.limit:.2e}",
                      f"{out.max_rel_error:.2e}", agree, result)
    return table


def conversion(console: Console, result: ConversionResult) -> None:
    for note in result.notes:
        console.print(f"Note: {note}", soft_wrap=True)
    if result.parity is not None:
        console.print(parity_table(result.parity))
    else:
        console.print("Parity: skipped (--no-verify)")
    console.print(f"Saved {result.manifest['target']} {result.manifest.get('precision', 'fp32')} artifact to "
                  f"{result.output_dir}/")
    quantization = result.manifest.get("quantization")
    if quantization:
        console.print(f"int8: {quantization['quantized_convolutions']} convolutions on int8 weights; ODConv layers "
                      f"quantized {len(quantization['odconv_layers_quantized'])}, left in float "
                      f"{len(quantization['odconv_layers_float'])} (see manifest.json)")
    for name in result.manifest["files"] + ["manifest.json"]:
        console.print(f"  {name}")


def inspection(console: Console, report: dict) -> None:
    console.print(f"[bold]{report['arch']}[/bold]  kernel_num {report['kernel_num']}  reduction {report['reduction']}  "
                  f"classes {report['num_classes']}  ({report['source_format']})")
    for sentence in report["inferred"]:
        console.print(f"  - {sentence}")
    height, width = report["input_size"]
    console.print(f"params {_millions(report['params'])}  MACs {report['macs'] / 1e9:.3f}G at {height}x{width}")
    table = Table(title=f"{len(report['layers'])} ODConv layers")
    for column in ("path", "in", "out", "k", "stride", "groups", "kernel_num", "attentions"):
        table.add_column(column)
    for layer in report["layers"]:
        table.add_row(layer["path"], str(layer["in_channels"]), str(layer["out_channels"]), str(layer["kernel_size"]),
                      str(layer["stride"][0]), str(layer["groups"]), str(layer["kernel_num"]), " ".join(layer["attentions"]))
    console.print(table)


def module_inspection(console: Console, found: dict) -> None:
    """An odexport.inspect result: recognised dynamic convolutions, then what no adapter recognised."""
    console.print(f"[bold]{found['model']}[/bold]  params {_millions(found['params'])}")
    table = Table(title=f"{len(found['recognised'])} recognised dynamic convolutions")
    for column in ("path", "adapter", "conv", "kernels", "attentions", "T", "adapters tried", "notes"):
        table.add_column(column)
    for layer in found["recognised"]:
        notes = []
        if layer["kernel_bias"]:
            notes.append("bias per kernel")
        if layer["epilogue"]:
            notes.append(f"then {layer['epilogue']}")
        if layer["kernel_attention"] == "given":
            notes.append("routing given by the caller")
        if layer["path"] in found["undecided"]:
            notes.append("attention BatchNorm skipped at batch 1: choose --attention-batchnorm")
        temperature = "-" if layer["temperature"] is None else f"{layer['temperature']:g}"
        conv = (f"{layer['in_channels']}->{layer['out_channels']} k{layer['kernel_size']} s{layer['stride'][0]}"
                + (f" g{layer['groups']}" if layer["groups"] > 1 else ""))
        attentions = ",".join(name[0] for name in layer["attentions"])  # c f s k
        table.add_row(layer["path"] or "(the model)", layer["adapter"], conv, str(layer["kernel_num"]), attentions,
                      temperature, ", ".join(_attempt(a) for a in layer.get("adapters", ())), "; ".join(notes))
    console.print(table)
    console.print("attentions: c channel, f filter, s spatial, k kernel; T: temperature kept outside the state dict; "
                  "adapters tried: every adapter whose structure the layer has, ✓ its description reproduces the "
                  "layer (relative error), ✗ it does not, - not tried")
    if found["generic"]:
        console.print(f"[bold]{len(found['generic'])} taken by the generic path[/bold] (no adapter; exported as "
                      "they are, each batch-folding convolution written per sample; docs/adapters.md):")
        for layer in found["generic"]:
            console.print(f"  {layer['path']} ({layer['type']}): {layer['batch_folded_convolutions']} batch-folding "
                          f"convolution(s); found because it {layer['found_because']}", soft_wrap=True)
    if found["unrecognised"]:
        console.print(f"[bold red]{len(found['unrecognised'])} not recognised[/bold red] (convert refuses these; "
                      "docs/adapters.md shows how to write an adapter):")
        for layer in found["unrecognised"]:
            if layer.get("attempts"):
                console.print(f"  {layer['path']} ({layer['type']}): no description of it reproduces its forward",
                              soft_wrap=True)
                for attempt in layer["attempts"]:
                    console.print(f"    {_attempt(attempt)}: {attempt['detail']}", soft_wrap=True)
            else:
                console.print(f"  {layer['path']} ({layer['type']}): {layer['reason']}", soft_wrap=True)
    elif not found["generic"]:
        console.print("Nothing unrecognised: every module that looks like a dynamic convolution has an adapter.")


def _attempt(attempt: dict) -> str:
    """One adapter tried on a layer: "✓ official (2e-07)", "✗ fused-bn-act (0.31)", "- linear-heads"."""
    if attempt["confirmed"] is None:
        return f"- {attempt['adapter']}"
    error = "failed" if attempt["error"] is None else f"{attempt['error']:.1g}"
    return f"{'✓' if attempt['confirmed'] else '✗'} {attempt['adapter']} ({error})"


def onnx_inspection(console: Console, summary: dict) -> None:
    console.print(f"lowering {summary['lowering'] or 'unknown (not written by odexport)'}  opset {summary['opset']}  "
                  f"{summary['nodes']} nodes")
    for name, shape in summary["inputs"].items():
        console.print(f"  input  {name} {shape}")
    for name, shape in summary["outputs"].items():
        console.print(f"  output {name} {shape}")
    if summary["functions"]:
        console.print(f"  functions: {', '.join(summary['functions'])}")
    console.print("  ops: " + ", ".join(f"{op} {count}" for op, count in summary["op_counts"].items()))
    table = Table(title=f"{len(summary['layers'])} dynamic convolutions")
    for column in ("path", "path taken", "nodes", "ops"):
        table.add_column(column)
    for layer in summary["layers"]:
        ops = ", ".join(f"{op} {count}" for op, count in layer["op_counts"].items())
        taken = "generic" if layer["lowering"] == "generic" else summary["lowering"] or "-"
        table.add_row(layer["path"], taken, str(layer["nodes"]), ops)
    console.print(table)


def artifact_inspection(console: Console, summary: dict) -> None:
    """An artifact: what its manifest records, then its ONNX graph (for a .onnx)."""
    manifest = summary["manifest"]
    console.print(f"model file {summary['model_file']}")
    if manifest:
        console.print(f"manifest format {manifest['format']}: {manifest['target'] or '?'} {manifest['precision']}, "
                      f"lowering {manifest['lowering'] or '?'}, {len(manifest['odconv_layers'])} ODConv layers, "
                      f"runs on {', '.join(manifest['runs_on'] or ['any runtime'])}")
    if "op_counts" in summary:
        onnx_inspection(console, summary)
    elif manifest:
        for kind in ("inputs", "outputs"):
            for name, shape in manifest[kind].items():
                console.print(f"  {kind[:-1]:<6} {name} {shape}")



def _number(value: float | None, fmt: str = ".2e") -> str:
    return "-" if value is None else format(value, fmt)


def verification_table(report) -> Table:
    """Every runtime's outputs against PyTorch (a VerifyReport), a column per runtime and output: narrow
    enough for an 80-column CI log."""
    tolerance = report.tolerance
    checks = "".join(text for text, on in ((f", cosine >= {tolerance.min_cosine:g}", tolerance.min_cosine > -1),
                                           (f", top-1 >= {tolerance.min_top1_agreement:.0%}",
                                            tolerance.min_top1_agreement > 0)) if on)
    table = Table(title=f"Parity vs PyTorch ({tolerance.name}: limit {tolerance.atol:g} + {tolerance.rtol:g} x "
                        f"max|ref|{checks})")
    table.add_column("")
    columns = [(result, out) for result in report.runtimes for out in result.parity.outputs]
    for result, out in columns:
        table.add_column(f"{result.runtime}\n{out.name}")

    def row(label: str, cell) -> None:
        table.add_row(label, *(cell(out) for _, out in columns))

    def shape(out) -> str:
        mismatch = out.reference_shape is not None and tuple(out.reference_shape) != tuple(out.shape)
        return str(list(out.shape)) + (f" (PyTorch {list(out.reference_shape)})" if mismatch else "")

    row("shape", shape)
    row("max abs error", lambda o: _number(o.max_abs_error))
    row("mean abs error", lambda o: _number(o.mean_abs_error))
    row("p99 abs error", lambda o: _number(o.p99_abs_error))
    row("max rel error", lambda o: _number(o.max_rel_error))
    row("mean rel error", lambda o: _number(o.mean_rel_error))
    row("p99 rel error", lambda o: _number(o.p99_rel_error))
    row("limit", lambda o: _number(o.limit))
    row("cosine (lowest)", lambda o: _number(o.cosine_similarity, ".6f"))
    row("top-1 agreement", lambda o: _number(o.top1_agreement, ".0%"))
    row("top-5 agreement", lambda o: _number(o.top5_agreement, ".0%"))
    row("result", lambda o: "[green]PASSED[/green]" if o.passed else "[red]FAILED[/red]")
    return table


def layers_table(located, *, every: bool, context: int = 3) -> Table:
    """Layer outputs against PyTorch's (a Localization): all of them, or the first divergent one and the
    few layers before it."""
    rows = list(located.layers)
    first = located.first_divergent
    if first is not None and not every:
        end = rows.index(first) + 1
        rows = rows[max(0, end - 1 - context):end]
    table = Table(title=f"Layers in {located.runtime}: {located.summary()}")
    for column in ("module (execution order)", "max abs", "max rel", "limit", "result"):
        table.add_column(column)
    for layer in rows:
        name = layer.path if layer.reference == layer.path else f"{layer.path} (+ {layer.reference}, folded)"
        table.add_row(name, _number(layer.max_abs_error), _number(layer.max_rel_error), _number(layer.limit),
                      "[green]ok[/green]" if layer.passed else "[red]DIVERGES[/red]")
    return table


def verification(console: Console, report, *, all_layers: bool = False) -> None:
    """A VerifyReport: the outputs table, each runtime's layers when they were compared, and the verdict."""
    height, width = report.input_size
    samples = ", ".join(f"{count} {kind}" for kind, count in report.samples.items())
    console.print(f"Verifying {report.model_file} against {report.reference}", soft_wrap=True)
    console.print(f"  inputs: {samples} at {height}x{width}; batch {', '.join(map(str, report.batch_sizes))}")
    for note in report.notes:
        console.print(f"  note: {note}", soft_wrap=True)
    console.print(verification_table(report))
    for result in report.runtimes:
        if result.layers is None:
            continue
        if result.layers.layers:
            console.print(layers_table(result.layers, every=all_layers))
        else:
            console.print(f"Layers in {result.runtime}: {result.layers.summary()}", soft_wrap=True)
    runtimes = ", ".join(r.runtime for r in report.runtimes)
    if report.passed:
        console.print(f"[bold green]PASSED[/bold green] ({runtimes})")
    else:
        console.print("[bold red]FAILED[/bold red]: " + "; ".join(report.failures()), soft_wrap=True)


def _ms(value: float) -> str:
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


def profile_table(report) -> Table:
    """A column per runtime, precision and batch (a ProfileReport): narrow enough for an 80-column log."""
    height, width = report.input_size
    table = Table(title=f"Profile of {report.model_file} at {height}x{width}")
    table.add_column("")
    for run in report.runs:
        table.add_column(f"{run.runtime}\n{run.precision} b{run.batch}", justify="right")

    def row(label: str, cell) -> None:
        table.add_row(label, *(cell(run) for run in report.runs))

    row("hint, threads", lambda r: f"{r.hint}, {r.threads or 'auto'}" + (f", {r.streams} streams" if r.streams else ""))
    row("compile ms", lambda r: _ms(r.compile_ms))
    row("first call ms", lambda r: _ms(r.first_inference_ms))
    static = any(r.shipped_latency is not None for r in report.runs)
    row("median ms" + (", static shapes" if static else ""), lambda r: f"[bold]{_ms(r.latency.median_ms)}[/bold]")
    if static:
        # What a user's own code gets from the file: OpenVINO compiled with the file's dynamic shapes.
        row("median ms, as shipped", lambda r: _ms((r.shipped_latency or r.latency).median_ms))
        row("as shipped / static", lambda r: f"{r.shipped_ratio:.2f}x" if r.shipped_latency else "-")
    row("mean ms", lambda r: _ms(r.latency.mean_ms))
    row("p90 ms", lambda r: _ms(r.latency.p90_ms))
    row("p99 ms", lambda r: _ms(r.latency.p99_ms))
    row("min ms", lambda r: _ms(r.latency.min_ms))
    row("max ms", lambda r: _ms(r.latency.max_ms))
    row("timed calls", lambda r: str(r.latency.count))
    row("images/s", lambda r: f"{r.throughput:.1f}" + (f" ({r.requests} req)" if r.requests > 1 else ""))
    row("peak MiB", lambda r: f"{r.peak_memory_mib:.0f}" + ("" if r.memory_exact else "*"))
    return table


def layer_table(run, top: int) -> Table:
    """The slowest modules of one configuration, with the split by kind in the title."""
    layers = run.layers
    split = ", ".join(f"{kind} {ms:.2f} ms ({ms / (layers.total_ms or 1):.0%})" for kind, ms in layers.by_category.items())
    table = Table(title=f"Layers in {run.runtime} {run.precision} batch {run.batch} (mean of {layers.runs} runs): {split}")
    for column in ("module", "kind", "ms", "share", "nodes", "kernels (exec types)"):
        table.add_column(column, justify="right" if column in ("ms", "share", "nodes") else "left")
    for row in layers.top(top):
        kernels = [kernel for kernel in row.exec_types if not kernel.startswith(("unknown", "undef"))]
        table.add_row(row.module, row.category, f"{row.ms:.3f}", f"{row.ms / (layers.total_ms or 1):.1%}", str(row.nodes),
                      " ".join(kernels))
    return table


def profile(console: Console, report, *, top: int = 15) -> None:
    """A ProfileReport: the runs, then each run's layers when measured, reference kernels, notes."""
    machine = report.machine
    load = machine.get("load_average")
    console.print(f"{machine['cpu']}, {machine['logical_cores']} logical cores"
                  + (f", load average {load[0]:.2f}" if load else ""), soft_wrap=True)
    console.print(profile_table(report))
    if any(not run.memory_exact for run in report.runs):
        console.print("  * peak memory: growth beyond the process's earlier peak (no resettable high-water mark here)")
    for run in report.runs:
        if run.layers is None:
            continue
        console.print(layer_table(run, top))
        fallback = run.layers.reference_kernels
        if fallback:
            names = ", ".join(f"{node.name} ({node.op}, {node.exec_type})" for node in fallback[:8])
            more = f" and {len(fallback) - 8} more" if len(fallback) > 8 else ""
            console.print(f"[yellow]{len(fallback)} nodes ran reference (ref_*) kernels[/yellow], "
                          f"{sum(n.ms for n in fallback):.3f} ms: {names}{more}", soft_wrap=True)
    for note in report.notes:
        console.print(f"  note: {note}", soft_wrap=True)


def _hand_off(placement: dict) -> str:
    """A placement probe's record (benchmarks/placement.py): "412/398 ns" before/after the measurement."""
    probes = [placement.get("before_ns"), placement.get("after_ns")]
    return "/".join("-" if ns is None else f"{ns:.0f}" for ns in probes) + " ns"


def comparison(console: Console, report) -> None:
    """A CompareReport: median ms and the ratio to the static twin, a column per runtime/precision/batch."""
    keys = list(dict.fromkeys(row.run.key for row in report.rows))
    variants = list(dict.fromkeys(row.variant for row in report.rows))
    height, width = report.input_size
    table = Table(title=f"{report.model} vs its static twin {report.twin} at {height}x{width}, "
                        f"{report.threads or 'auto'} threads: median ms (x static twin)")
    table.add_column("variant", no_wrap=True)
    for key in keys:
        table.add_column(key, justify="right")
    for variant in variants:
        cells = []
        for key in keys:
            row = report.row(variant, key)
            cells.append("-" if row is None else f"{_ms(row.run.latency.median_ms)}"
                         + ("" if row.ratio is None else f" ({row.ratio:.2f}x)"))
        table.add_row(variant, *cells)
    placements = [next((row.placement for row in report.rows if row.run.key == key), None) for key in keys]
    if any(placements):
        table.add_row("[dim]CPU hand-off[/dim]", *("-" if p is None else f"[dim]{_hand_off(p)}[/dim]" for p in placements))
    machine = report.machine
    load = machine.get("load_average")
    console.print(f"{machine['cpu']}, {machine['logical_cores']} logical cores"
                  + (f", load average {load[0]:.2f}" if load else ""), soft_wrap=True)
    console.print(table)
    if any(placements):
        console.print("  CPU hand-off: one byte's round trip between the two CPUs before/after each column was "
                      "measured; on a virtual machine it takes two levels about 2x apart, and the higher one means "
                      "the CPUs sat apart (no shared cache), which slows memory-bound nodes: compare ratios "
                      "measured at the lower one.", soft_wrap=True)
    for note in report.notes:
        console.print(f"  note: {note}", soft_wrap=True)
