"""Specs only, for a wine classifier that arrives as one file carrying its own code or graph: a traced TorchScript
archive (``torch.jit.trace``), a ``torch.export`` program or an ONNX file, standardisation included.

There is no class to rebuild: the file is the model. Serve it with ``MODEL_ARCHITECTURE=wine_traced`` (and
``ALLOW_CODE_FORMATS=torchscript`` or ``torch_export`` for the two formats that run code; an ONNX file needs no
opt-in). ``make new-model NAME=... SPEC_ONLY=1`` writes a module like this one for your file.
"""

from __future__ import annotations

from model_arch.architecture import Architecture
from model_arch.spec import InputSpec, OutputSpec
from model_arch.wine_mlp import FEATURES

INPUT_SPEC = InputSpec(
    name="measurements",
    shape=(len(FEATURES),),
    minimum=0.0,
    maximum=5000.0,
    names=FEATURES,
    description="The 13 raw measurements of one wine; the file standardises them itself.",
)
OUTPUT_SPEC = OutputSpec(kind="classification", labels=("class_0", "class_1", "class_2"))

ARCHITECTURE = Architecture(name="wine_traced", model_class=None, input_spec=INPUT_SPEC, output_spec=OUTPUT_SPEC)
