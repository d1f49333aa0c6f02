"""Lay a model folder out the way an Azure ML deployment sees it.

A model registered from a folder is downloaded to
``AZUREML_MODEL_DIR=/var/azureml-app/azureml-models/<model-name>/<version>`` and keeps the folder's name
below it. ``lay_out_like_azure(Path("build/model"), root)`` makes ``root/<name>/<version>/model/...`` and returns
the ``AZUREML_MODEL_DIR`` to use.
"""

from __future__ import annotations

import shutil
from pathlib import Path

DEFAULT_MODEL_NAME = "digits-cnn"
DEFAULT_VERSION = "1"


def lay_out_like_azure(
    source: Path, root: Path, name: str = DEFAULT_MODEL_NAME, version: str = DEFAULT_VERSION
) -> Path:
    """Copy ``source`` (a model folder or a single file) under ``root`` as Azure does; return the model dir.

    A folder lands as ``<model dir>/<folder name>/...``; a single file as ``<model dir>/<file name>``.
    Whatever was laid out there before is replaced.
    """
    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(f"{source} does not exist; build it first (make model)")
    model_dir = Path(root) / name / version
    if model_dir.exists():
        shutil.rmtree(model_dir)
    model_dir.mkdir(parents=True)
    if source.is_dir():
        shutil.copytree(source, model_dir / source.name)
    else:
        shutil.copy2(source, model_dir / source.name)
    return model_dir
