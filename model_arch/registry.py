"""The architectures this template can rebuild, by name.

A manifest names its architecture (``"architecture": "digits_cnn"``); the loader looks the name up here and
never imports a module path taken from a model folder, so a model folder cannot make the server run code.
To serve a new model, add its module to ``model_arch/`` and one ``Architecture`` entry below.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from torch import nn

from model_arch import digits_cnn
from model_arch.spec import InputSpec, OutputSpec


@dataclass(frozen=True)
class Architecture:
    """How to rebuild one kind of model, and what it takes and gives when no manifest says otherwise."""

    name: str
    model_class: type[nn.Module]
    config_class: type
    input_spec: InputSpec
    output_spec: OutputSpec

    def build(self, config: dict[str, Any] | None = None) -> nn.Module:
        """A fresh, untrained model from a config dict (``None`` or ``{}``: the defaults).

        Raises:
            ValueError: the dict names fields the config class does not have.
        """
        config = dict(config or {})
        known = {f.name for f in dataclasses.fields(self.config_class)}
        unknown = sorted(set(config) - known)
        if unknown:
            raise ValueError(
                f"config for architecture {self.name!r} has unknown field(s) {unknown}; "
                f"{self.config_class.__name__} has {sorted(known)}"
            )
        return self.model_class(self.config_class(**config))

    def default_config(self) -> dict[str, Any]:
        return dataclasses.asdict(self.config_class())


ARCHITECTURES: dict[str, Architecture] = {
    arch.name: arch
    for arch in (
        Architecture(
            name="digits_cnn",
            model_class=digits_cnn.DigitsCNN,
            config_class=digits_cnn.DigitsCNNConfig,
            input_spec=digits_cnn.INPUT_SPEC,
            output_spec=digits_cnn.OUTPUT_SPEC,
        ),
    )
}

DEFAULT_ARCHITECTURE = "digits_cnn"


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
