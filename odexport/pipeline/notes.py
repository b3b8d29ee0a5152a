"""What convert tells the user about how it read the model: sentences for the console and the manifest,
and one record per recognised layer (the manifest's and inspect's)."""

from __future__ import annotations

from ..generic import GenericLayer
from ..rewrite import ODConvLayer


def layer_record(layer: ODConvLayer) -> dict:
    """One recognised layer as the manifest and inspect show it."""
    return {"path": layer.path, "adapter": layer.adapter, "lowering": layer.lowering,
            "attentions": list(layer.spec.active_attentions), "kernel_num": layer.spec.kernel_num,
            "kernel_bias": layer.spec.kernel_bias is not None, "kernel_attention": layer.spec.kernel_attention,
            "folded_batchnorm": layer.folded_batchnorm,
            "epilogue": None if layer.epilogue is None else type(layer.epilogue).__name__,
            "temperature": layer.temperature, "attention_batchnorm": layer.attention_batchnorm}


def conversion_notes(layers: list[ODConvLayer]) -> list[str]:
    """Sentences on how the layers were read that change what the artifact computes."""
    notes = []
    chosen = [layer.path or "(the model)" for layer in layers if layer.attention_batchnorm]
    if chosen:
        semantics = next(layer.attention_batchnorm for layer in layers if layer.attention_batchnorm)
        meaning = ("applied with its running statistics at every batch size (what PyTorch computes at batch > 1)"
                   if semantics == "apply" else "skipped at every batch size (what PyTorch computes at batch 1)")
        notes.append(f"attention BatchNorm of {len(chosen)} layer(s) ({', '.join(chosen[:3])}"
                     f"{', ...' if len(chosen) > 3 else ''}) {meaning}; the PyTorch reference was run to match")
    temperatures = sorted({layer.temperature for layer in layers if layer.temperature is not None})
    if temperatures and temperatures != [1.0]:
        notes.append(f"temperatures outside the state dict, folded into the attention heads: "
                     f"{', '.join(f'{t:g}' for t in temperatures)}")
    return notes


def generic_notes(generic: list[GenericLayer]) -> list[str]:
    """What the user should know about layers that took the generic path."""
    if not generic:
        return []
    paths = [layer.path for layer in generic]
    return [f"{len(paths)} layer(s) no adapter describes ({', '.join(paths[:3])}{', ...' if len(paths) > 3 else ''}) "
            "exported by the generic path: traced as they are, with each batch-folding convolution written per "
            "sample (exact at any batch; no lowering or BatchNorm folding applies; slower than an adapter's, "
            "docs/adapters.md)"]
