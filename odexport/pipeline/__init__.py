"""convert's pipeline: options checked once into a ConvertOptions (options.py), then named stages
(stages.py on the model side: load, rewrite, export, simplify; writing.py on the artifact side: calibrate,
write the target, quantize, parity, manifest), run in order by run.py into a staged output directory.

    options = convert_options(target="onnxruntime", imgsz=224, output="out")
    result = convert_checkpoint(Path("model.pth.tar"), options)
"""

from .options import DEFAULT_BATCH, DEFAULT_LOWERING, ConvertOptions, convert_options, parse_batch, parse_imgsz
from .run import ConversionResult, convert_checkpoint, convert_model

__all__ = ["DEFAULT_BATCH", "DEFAULT_LOWERING", "ConversionResult", "ConvertOptions", "convert_checkpoint",
           "convert_model", "convert_options", "parse_batch", "parse_imgsz"]
