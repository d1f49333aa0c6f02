"""Hugging Face ``transformers`` encoders, as ``save_pretrained`` wrote them: rebuilt from ``config.json`` by
``transformers``' own classes, for an allow-listed set of model types and tasks only.

Nothing in a model folder chooses the code that runs: the model type must be one of ``MODEL_TYPES`` and the task one
of ``TASKS``, the class is ``transformers``' own for that pair (``AutoModel*.from_config``), and
``trust_remote_code`` is never set, so a ``config.json`` that asks for custom code (``auto_map``) is refused
(``model_folder.hf_folder`` reads the folder and says why). The weights are then loaded into the rebuilt model by
the template's safe loader, like any state_dict (``model_folder.weights``): safetensors, or a ``pytorch_model.bin``
through ``torch.load(weights_only=True)``.

A manifest names this architecture with ``config = {"task": ..., "hf_config": <config.json>}``;
``model_folder.hf_folder.manifest_for_transformers_folder`` writes that from the folder.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from model_arch.architecture import Architecture
from model_arch.spec import DYNAMIC, InputSpec, OutputSpec
from model_arch.text import HF_ARCHITECTURE, HF_MODEL_TYPES, HF_TASKS, TextSpec

# The allow-lists live in model_arch.text, which imports no torch: a worker serving an ONNX export reads them.
NAME, MODEL_TYPES, TASKS = HF_ARCHITECTURE, HF_MODEL_TYPES, HF_TASKS


def build_transformers_model(task: str, hf_config: dict[str, Any]) -> nn.Module:
    """A freshly initialised model of ``hf_config``'s type for ``task``, by ``transformers``' own class.

    Raises:
        ValueError: a model type or task outside the allow-lists, or custom code asked for.
    """
    import transformers

    model_type = hf_config.get("model_type")
    if model_type not in MODEL_TYPES:
        raise ValueError(f"model_type {model_type!r} is not served; allowed: {sorted(MODEL_TYPES)}")
    if task not in TASKS:
        raise ValueError(f"task {task!r} is not served; allowed: {sorted(TASKS)}")
    if "auto_map" in hf_config:
        raise ValueError("config.json asks for custom code (auto_map), which this template never runs")
    settings = {k: v for k, v in hf_config.items() if k not in ("model_type", "transformers_version", "architectures")}
    config = transformers.AutoConfig.for_model(model_type, **settings)
    config.attn_implementation = "eager"  # the same attention in PyTorch and in the ONNX export
    auto_class = getattr(transformers, TASKS[task][0])
    return auto_class.from_config(config, trust_remote_code=False).eval()


ARCHITECTURE = Architecture(
    name=NAME,
    model_class=build_transformers_model,  # type: ignore[arg-type]  (a function that returns the nn.Module)
    input_spec=InputSpec(name="input_ids", shape=(DYNAMIC,), dtype="int64", minimum=0),
    output_spec=OutputSpec(kind="classification", labels=("LABEL_0", "LABEL_1")),
    inputs=(
        InputSpec(name="input_ids", shape=(DYNAMIC,), dtype="int64", minimum=0),
        InputSpec(name="attention_mask", shape=(DYNAMIC,), dtype="int64", minimum=0, maximum=1),
    ),
    tokenizer=TextSpec(),
)
