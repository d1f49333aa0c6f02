"""What the template needs to know about one kind of model: how to rebuild it, and what it takes and gives.

Each module in ``model_arch/`` defines ``ARCHITECTURE = Architecture(...)``; ``model_arch.registry`` lists them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from torch import nn

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
