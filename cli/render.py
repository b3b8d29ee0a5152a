"""Rich renderings of library results; the library computes, this only prints."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from odexport.convert import ConversionResult


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
    if result.parity is not None:
        console.print(parity_table(result.parity))
    else:
        console.print("Parity: skipped (--no-verify)")
    console.print(f"Saved {result.manifest['target']} artifact to {result.output_dir}/")
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
    table = Table(title=f"{len(summary['layers'])} ODConv layers")
    for column in ("path", "nodes", "ops"):
        table.add_column(column)
    for layer in summary["layers"]:
        ops = ", ".join(f"{op} {count}" for op, count in layer["op_counts"].items())
        table.add_row(layer["path"], str(layer["nodes"]), ops)
    console.print(table)
