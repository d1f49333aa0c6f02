"""What the template needs to know about one kind of model: how to rebuild it, and what it takes and gives.

Each module in ``model_arch/`` defines ``ARCHITECTURE = Architecture(...)``; ``model_arch.registry`` lists them.
Three ways to describe a model:

* a class and a config dataclass (the demos): ``Architecture(name, Net, input_spec, output_spec, NetConfig)``,
  rebuilt as ``Net(NetConfig(**config))``;
* a class as pasted from a tutorial, whose constructor takes nothing or keyword arguments:
  ``Architecture(name, Net, input_spec, output_spec)``, rebuilt as ``Net(**config)``;
* specs only, for a file that carries its own code or graph (TorchScript, ``torch.export``, an ONNX file):
  ``Architecture(name, None, input_spec, output_spec)``. Nothing is rebuilt; the file is the model.
"""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass
from typing import Any

from torch import nn

from model_arch.spec import InputSpec, OutputSpec
from model_arch.text import TextSpec


@dataclass(frozen=True)
class Architecture:
    """How to rebuild one kind of model, and what it takes and gives when no manifest says otherwise.

    Attributes:
        name: the name manifests and ``MODEL_ARCHITECTURE`` use.
        model_class: the ``nn.Module`` class, or None for a spec-only architecture (the file is the model).
        input_spec: what a client sends per row, and how it becomes the model's input.
        output_spec: what the model's output means.
        config_class: a dataclass the constructor takes as its one argument; None when the constructor takes
            keyword arguments (or none).
        inputs: every model input in ``forward`` order, for a model that takes several (``input_spec`` is the
            first); empty: ``input_spec`` is the only one.
        tokenizer: for a text model, how strings become its inputs (``model_arch.text``); training writes the
            tokenizer file and this spec, with its checksum, into the model folder.
    """

    name: str
    model_class: type[nn.Module] | None
    input_spec: InputSpec
    output_spec: OutputSpec
    config_class: type | None = None
    inputs: tuple[InputSpec, ...] = ()
    tokenizer: TextSpec | None = None

    @property
    def model_inputs(self) -> tuple[InputSpec, ...]:
        """Every input of the model, in ``forward`` order."""
        return self.inputs or (self.input_spec,)

    @property
    def spec_only(self) -> bool:
        """True when there is no class to rebuild: the weights file carries its own code or graph."""
        return self.model_class is None

    def build(self, config: dict[str, Any] | None = None) -> nn.Module:
        """A fresh, untrained model from a config dict (``None`` or ``{}``: the defaults).

        Raises:
            ValueError: the dict names fields the constructor does not take, misses one it needs, or the
                architecture is spec-only.
        """
        if self.model_class is None:
            raise ValueError(
                f"architecture {self.name!r} declares specs only: it serves a file that carries its own code or "
                "graph (TorchScript, torch.export, ONNX), and has no class to load a state_dict into"
            )
        config = dict(config or {})
        known, required = self._parameters()
        unknown = [] if known is None else sorted(set(config) - known)
        missing = sorted(required - set(config))
        if unknown or missing:
            takes = self.config_class.__name__ if self.config_class else f"{self.model_class.__name__}.__init__"
            raise ValueError(
                f"config for architecture {self.name!r} has unknown field(s) {unknown} and lacks required {missing}; "
                f"{takes} takes {sorted(known or [])}"
            )
        if self.config_class is not None:
            return self.model_class(self.config_class(**config))
        return self.model_class(**config)

    def default_config(self) -> dict[str, Any]:
        """The config that rebuilds the model at its defaults (what a weights file without a manifest gets)."""
        if self.config_class is not None:
            return dataclasses.asdict(self.config_class())
        return {}

    def _parameters(self) -> tuple[set[str] | None, set[str]]:
        """(every name the config may give, None for any (``**kwargs``); the names it must give)."""
        if self.config_class is not None:
            fields = dataclasses.fields(self.config_class)
            required = {
                f.name
                for f in fields
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING  # type: ignore[misc]
            }
            return {f.name for f in fields}, required
        parameters = list(inspect.signature(self.model_class).parameters.values())
        named = [p for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        any_name = any(p.kind == p.VAR_KEYWORD for p in parameters)
        return None if any_name else {p.name for p in named}, {p.name for p in named if p.default is p.empty}
