"""How far each precision moves a model's outputs: the measurements behind the tolerance presets in
each precision's tolerance in odexport.precisions.

Seeded zoo models (odexport.models.randomize_) are converted to every target x precision (decomposed
lowering) without the parity gate, then compared with PyTorch on convert's parity inputs (the bundled
photographs and seeded random tensors) plus 24 synthetic calibration-style crops: the largest error
relative to max |PyTorch output| and the top-1 agreement.

    python benchmarks/precision_errors.py [--imgsz 64] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch

from odexport.calibration import synthetic_samples
from odexport.conversion import convert_model
from odexport.inputs import parity_inputs
from odexport.models import create_model, randomize_
from odexport.parity import Tolerance, check_parity
from odexport.backends.torch import TorchRunner
from odexport.backends import get_target, list_targets

MODELS = (("od_mobilenetv2_050", 4), ("od_resnet18", 4))
MEASURE_ONLY = Tolerance("measure", atol=float("inf"), rtol=0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--imgsz", type=int, default=64)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    torch.set_num_threads(1)
    size = (args.imgsz, args.imgsz)
    samples = np.concatenate([parity_inputs(size), synthetic_samples(24, size, seed=1)])
    rows = []
    with tempfile.TemporaryDirectory(prefix="odexport-precision-") as work:
        for arch, kernel_num in MODELS:
            with torch.no_grad():
                model = randomize_(create_model(arch, num_classes=10, kernel_num=kernel_num), seed=0).eval()
            for target in list_targets():
                for precision in get_target(target).precisions:
                    result = convert_model(model, target=target, output=Path(work) / f"{arch}_{target}_{precision}",
                                           imgsz=size, precision=precision, calibration="synthetic", verify=False)
                    runner = get_target(target).runner(result.model_file)
                    parity = check_parity(TorchRunner(model, ("input",), ("logits",)), runner, [samples],
                                          batch_sizes=(len(samples),), tolerance=MEASURE_ONLY)
                    out = parity.outputs[0]
                    rows.append({"arch": arch, "kernel_num": kernel_num, "target": target, "precision": precision,
                                 "max_abs_error": out.max_abs_error, "max_rel_error": out.max_rel_error,
                                 "top1_agreement": out.top1_agreement, "samples": parity.samples})
                    print(f"{arch} {target:12s} {precision:5s} max rel {out.max_rel_error:.2e} "
                          f"max abs {out.max_abs_error:.2e} top-1 agreement {out.top1_agreement:.2f}", flush=True)
                    # Written after every row: a run stopped early keeps what it measured.
                    args.out.mkdir(parents=True, exist_ok=True)
                    (args.out / "precision_errors.json").write_text(
                        json.dumps({"imgsz": args.imgsz, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
