"""Turn a model file that a deployment refuses (a whole pickled module, a pickle from an older torch, a TorchScript
archive) into a model folder it serves: ``python -m model_folder.convert FILE --architecture NAME --output-dir DIR``.

Run it once, on your own machine, outside any deployment, on a file you trust: unpickling a whole module runs the
code it names, which is exactly what the scoring script refuses to do. The class it was saved from must be
registered in ``model_arch/`` (``make new-model NAME=...``, then paste the class over the generated one); a pickle
that names the class under another module (``__main__.Net`` from a training script, ``model.Net`` from a module you
do not have) is given the registered class of that name. The weights are taken out of the file, checked to fit the
class, and written as a model folder (``model_folder.weights.write_model_folder``) with its ONNX export.
"""

from __future__ import annotations

import argparse
import json
import logging
import pickle
import sys
import types
from pathlib import Path
from typing import Any

import torch
from torch import nn

from model_arch.architecture import Architecture
from model_arch.registry import get_architecture
from model_folder import formats
from model_folder.manifest import Manifest, ModelFolderError
from model_folder.onnx_export import add_onnx_export
from model_folder.weights import state_dict_mismatch, unwrap_state_dict, write_model_folder

logger = logging.getLogger(__name__)


def convert(
    source: Path, architecture: str, output_dir: Path, *, config: dict[str, Any] | None = None, onnx: bool = True
) -> Manifest:
    """Load ``source`` (trusted), take its weights, check them against ``architecture``, write a model folder.

    Raises:
        ModelFolderError: the file cannot be read, or its weights do not fit the architecture (the differences are
            listed).
    """
    try:
        arch = get_architecture(architecture)
    except KeyError as err:
        raise ModelFolderError(err.args[0]) from None
    state_dict = unwrap_state_dict(_weights_of(_load_trusted(source, arch)), source)
    config = dict(config or arch.default_config())
    model = arch.build(config)
    problems = state_dict_mismatch(model, state_dict)
    if problems:
        raise ModelFolderError(
            f"the weights in {source} do not fit architecture {arch.name!r} with config {config}:\n"
            + "\n".join(f"  - {p}" for p in problems)
            + "\nPaste the exact class the file was saved from into its model_arch/ module, and give the constructor "
            "arguments it was built with (--config '{\"num_classes\": 10}')."
        )
    model.load_state_dict(state_dict)
    manifest = write_model_folder(model.eval(), output_dir, architecture=arch.name, config=config)
    if onnx:
        add_onnx_export(output_dir)
    return manifest


def _load_trusted(source: Path, arch: Architecture) -> Any:
    """The object in ``source``, loaded with its code (the caller trusts it) on the CPU."""
    file_format = formats.detect_format(source)
    try:
        if file_format == formats.TORCHSCRIPT:
            return torch.jit.load(str(source), map_location="cpu")
        if file_format == formats.SAFETENSORS:
            from safetensors.torch import load_file

            return load_file(str(source))
        if file_format not in (formats.TORCH_SAVE, formats.LEGACY_TORCH_SAVE):
            raise ModelFolderError(
                f"{source} is a {formats.DESCRIPTIONS[file_format]}; this command converts torch.save files (whole "
                "modules, checkpoints, old formats), TorchScript archives and safetensors files"
            )
        return torch.load(source, map_location="cpu", weights_only=False, pickle_module=_pickle_with(arch))
    except ModelFolderError:
        raise
    except Exception as err:  # whatever unpickling raised: say it, with the file
        raise ModelFolderError(f"cannot load {source}: {type(err).__name__}: {err}") from err


def _pickle_with(arch: Architecture) -> types.ModuleType:
    """A ``pickle`` module whose unpickler resolves the architecture's class by name when the module the file names
    cannot be imported here (``__main__`` of the training script, a module you do not have)."""
    model_class = arch.model_class

    class Unpickler(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            try:
                return super().find_class(module, name)
            except (ImportError, AttributeError):
                if model_class is not None and name == model_class.__name__:
                    logger.info("%s.%s resolved to the registered %s", module, name, model_class.__qualname__)
                    return model_class
                raise

    shim = types.ModuleType("pickle_with_architecture")
    shim.__dict__.update({k: getattr(pickle, k) for k in dir(pickle) if not k.startswith("__")})
    shim.Unpickler = Unpickler  # type: ignore[attr-defined]
    return shim


def _weights_of(loaded: Any) -> Any:
    """The state_dict of a module, or the loaded object itself (a state_dict or a checkpoint dict)."""
    return loaded.state_dict() if isinstance(loaded, (nn.Module, torch.jit.ScriptModule)) else loaded


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="the file to convert")
    parser.add_argument("--architecture", required=True, help="the registered architecture (model_arch/) it holds")
    parser.add_argument("--output-dir", type=Path, required=True, help="where to write the model folder")
    parser.add_argument("--config", type=json.loads, default=None, help="constructor arguments, as a JSON object")
    parser.add_argument("--no-onnx", action="store_true", help="skip the ONNX export")
    parser.add_argument(
        "--trusted", action="store_true", help="you trust the file: it is unpickled with its code (required)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not args.trusted:
        parser.error(
            "this loads the file with the code it names (weights_only=False). Run it only on a file you trust, on "
            "your own machine, and say so with --trusted"
        )
    try:
        manifest = convert(args.source, args.architecture, args.output_dir, config=args.config, onnx=not args.no_onnx)
    except ModelFolderError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    export = " and its ONNX export" if manifest.onnx or (args.output_dir / "model.onnx").exists() else ""
    print(f"wrote {args.output_dir}: manifest.json, {manifest.weights_file}{export}")
    print(f"check it: make doctor MODEL_DIR={args.output_dir}; serve it: make serve MODEL_DIR={args.output_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
