"""The architectures this template can rebuild, by name.

A manifest names its architecture (``"architecture": "digits_cnn"``); the loader looks the name up here and
never imports a module path taken from a model folder, so a model folder cannot make the server run code.
To serve a new model, add its module to ``model_arch/`` (it defines ``ARCHITECTURE``) and its name to the import
and to ``MODULES`` below; ``make new-model NAME=...`` does both.
"""

from __future__ import annotations

from model_arch import digits_cnn, hf_text, linnerud_mlp, shapes_cnn, topics_text, tutorial_cnn, wine_mlp, wine_traced
from model_arch.architecture import Architecture

# Every architecture module, by name; `make new-model NAME=...` adds to this line and to the import above.
MODULES = (digits_cnn, linnerud_mlp, tutorial_cnn, wine_mlp, wine_traced, shapes_cnn, topics_text, hf_text)
ARCHITECTURES: dict[str, Architecture] = {module.ARCHITECTURE.name: module.ARCHITECTURE for module in MODULES}


def get_architecture(name: str) -> Architecture:
    """The registered architecture called ``name``.

    Raises:
        KeyError: with a message listing the registered names.
    """
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise KeyError(
            f"unknown architecture {name!r}; registered architectures: {sorted(ARCHITECTURES)}. "
            "Add yours to model_arch/registry.py."
        ) from None
