"""The built-in demo: a seeded od_resnet18 saved as an official training checkpoint, then converted."""

from __future__ import annotations

from pathlib import Path

from .checkpoint import save_official_checkpoint
from .console import Reporter
from .conversion import ConversionResult, convert_checkpoint
from .models import create_model, randomize_

DEMO_SEED = 0


def run_demo(
    output: Path, *, kernel_num: int = 1, imgsz: str | int = 224, reporter: Reporter | None = None
) -> tuple[Path, ConversionResult]:
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    model = randomize_(create_model("od_resnet18", kernel_num=kernel_num), seed=DEMO_SEED)
    checkpoint = output / "checkpoint.pth.tar"
    save_official_checkpoint(model, checkpoint)
    result = convert_checkpoint(
        checkpoint, target="openvino", output=output / "od_resnet18_openvino", imgsz=imgsz, reporter=reporter
    )
    return checkpoint, result
