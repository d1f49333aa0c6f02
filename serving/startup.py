"""Start-up for one worker: threads, find the model, load it safely with its runtime (``serving.engines``),
warm it up.

``score.init()`` calls ``load_predictor()`` once per worker process. Anything wrong raises an error whose
message names the folder, what was found and the fix; the inference server then exits non-zero, so a broken
deployment fails at start-up instead of answering requests wrongly.
"""

from __future__ import annotations

import logging
import time

from model_arch import formats
from model_arch.manifest import ModelFolderError
from serving import runtime
from serving.engines import load_engine
from serving.locate import locate_model, model_identity
from serving.predictor import Predictor
from serving.settings import Settings

logger = logging.getLogger(__name__)


def doctor_hint(model_dir: str | None) -> str:
    """The line a failed start-up ends with: the command that explains every file in the folder."""
    target = model_dir or "MODEL_DIR"
    return f"Diagnose: python -m serving.doctor {target}  (make doctor MODEL_DIR={target})"


def load_predictor(settings: Settings) -> Predictor:
    """Find, load and warm up the model that ``settings`` point at."""
    started = time.perf_counter()
    threads = runtime.threads_per_worker(settings.worker_count, settings.threads)
    try:
        source = locate_model(settings.model_dir, settings.model_path, settings.architecture)
        engine = load_engine(settings, source, threads)
        name, version = model_identity(settings.model_dir, source.manifest)
        predictor = Predictor(engine, source.manifest, source.weights, threads, name, version, settings.chunk_rows)
        warm_up_s = warm_up(predictor)
    except ModelFolderError as err:
        raise ModelFolderError(f"{err}\n{doctor_hint(settings.model_dir)}") from err
    logger.info(
        "model ready: %s version %s from %s (%s, %s, architecture %s), runtime %s on %s, %d thread(s), "
        "channels_last %s, chunks of %d rows, warm-up %.1f ms, start-up %.2f s",
        name,
        version,
        source.weights,
        formats.DESCRIPTIONS[formats.detect_format(source.weights)],
        "with manifest" if source.has_manifest else "no manifest: default config",
        source.manifest.architecture,
        f"{engine.name} ({source.manifest.onnx.file})" if engine.name == "onnxruntime" else engine.name,
        engine.device,
        threads,
        engine.channels_last,
        predictor.chunk_rows,
        warm_up_s * 1e3,
        time.perf_counter() - started,
    )
    return predictor


def warm_up(predictor: Predictor) -> float:
    """Run the warm-up batches; a model that fails on them fails start-up, not a client's request.

    Raises:
        ModelFolderError: the model loaded but cannot run on input shaped as its spec says.
    """
    try:
        return predictor.warm_up()
    except Exception as err:  # any failure here is the model's, and must stop the deployment
        shape = ", ".join(map(str, predictor.manifest.input.shape))
        raise ModelFolderError(
            f"{predictor.weights} loaded, but the model fails on a warm-up batch of zeros shaped (rows, {shape}): "
            f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}. It must accept that input "
            "for any number of rows: check the input spec, and export a torch.export program with a dynamic "
            "batch dimension, dynamic_shapes={'x': {0: torch.export.Dim('batch')}}."
        ) from err
