"""Write a verify report as files: JSON, and JUnit XML, the format CI systems show as test results (one
testcase per runtime and output, a failure carrying the error figures and the first divergent layer)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from ..errors import OutputError
from ..parity import OutputParity
from .report import RuntimeVerification, VerifyReport, describe_failure


def _figures(out: OutputParity) -> str:
    def number(value: float | None, fmt: str = ".3g") -> str:
        return "-" if value is None else format(value, fmt)

    return (f"shape {list(out.shape)}; max abs {number(out.max_abs_error)}, mean abs {number(out.mean_abs_error)}, "
            f"p99 abs {number(out.p99_abs_error)}; max rel {number(out.max_rel_error)}, p99 rel "
            f"{number(out.p99_rel_error)}; limit {number(out.limit)}; cosine {number(out.cosine_similarity, '.6f')}; "
            f"top-1 agreement {number(out.top1_agreement, '.0%')}, top-5 agreement {number(out.top5_agreement, '.0%')}")


def _testcase(suite: ET.Element, result: RuntimeVerification, out: OutputParity) -> None:
    case = ET.SubElement(suite, "testcase", classname=f"odexport.verify.{result.runtime}", name=out.name,
                         time=f"{result.seconds / max(len(result.parity.outputs), 1):.3f}")
    details = [_figures(out)]
    if result.layers is not None:
        details.append(result.layers.summary())
    if out.passed:
        ET.SubElement(case, "system-out").text = "\n".join(details)
    else:
        failure = ET.SubElement(case, "failure", type="ParityFailure",
                                message=f"{result.runtime}: {describe_failure(out, result.parity.tolerance)}")
        failure.text = "\n".join(details)


def junit_xml(report: VerifyReport) -> ET.ElementTree:
    cases = sum(len(r.parity.outputs) for r in report.runtimes)
    failures = sum(not out.passed for r in report.runtimes for out in r.parity.outputs)
    seconds = f"{sum(r.seconds for r in report.runtimes):.3f}"
    root = ET.Element("testsuites", name="odexport verify", tests=str(cases), failures=str(failures), time=seconds)
    suite = ET.SubElement(root, "testsuite", name=f"odexport verify {Path(report.model_file).name}",
                          tests=str(cases), failures=str(failures), errors="0", skipped="0", time=seconds)
    properties = ET.SubElement(suite, "properties")
    for name, value in (("artifact", report.artifact), ("checkpoint", report.checkpoint or ""),
                        ("reference", report.reference),
                        ("tolerance", f"{report.tolerance.name}: atol {report.tolerance.atol:g}, rtol {report.tolerance.rtol:g}"),
                        ("batch_sizes", ",".join(map(str, report.batch_sizes))),
                        ("input_size", "x".join(map(str, report.input_size)))):
        ET.SubElement(properties, "property", name=name, value=value)
    for result in report.runtimes:
        for out in result.parity.outputs:
            _testcase(suite, result, out)
    ET.indent(root)
    return ET.ElementTree(root)


def write_junit(report: VerifyReport, path: Path) -> Path:
    path = Path(path)
    junit_xml(report).write(path, encoding="utf-8", xml_declaration=True)
    return path


def write_reports(report: VerifyReport, *, json_path: Path | None = None, junit_path: Path | None = None) -> None:
    """Save the report as JSON and/or JUnit XML (for CI test views), creating parent directories."""
    for path, write in ((json_path, lambda p: p.write_text(json.dumps(report.to_dict(), indent=2) + "\n")),
                        (junit_path, lambda p: write_junit(report, p))):
        if path is None:
            continue
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            write(Path(path))
        except OSError as error:
            raise OutputError(f"cannot write {path}: {error.strerror or error}", hint="choose a writable path") from None
