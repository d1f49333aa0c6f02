"""Start-up for one worker: threads, find the model, choose its runtime, load it safely, warm it up.

``score.init()`` calls ``load_predictor()`` once per worker process. Anything wrong raises an error whose
message names the folder, what was found and the fix; the inference server then exits non-zero, so a broken
deployment fails at start-up instead of answering requests wrongly.
"""

from __future__ import annotations

import logging
import os
import time

from model_folder import formats
from model_folder.engines import RuntimeChoice, choose_runtime, load_engine
from model_folder.locate import locate_model, model_identity
from model_folder.manifest import ModelFolderError
from model_folder.tokenizer import load_text_encoder
from serving import threads
from serving.predictor import Predictor
from serving.settings import Settings, SettingsError

logger = logging.getLogger(__name__)


def doctor_hint(model_dir: str | None) -> str:
    """The line a failed start-up ends with: the command that explains every file in the folder."""
    target = model_dir or "MODEL_DIR"
    return f"Diagnose: python -m serving.doctor {target}  (make doctor MODEL_DIR={target})"


def load_predictor(settings: Settings) -> Predictor:
    """Find, load and warm up the model that ``settings`` point at.

    Raises:
        ModelFolderError: the folder cannot be served (the message ends with the doctor's command).
        SettingsError: a setting that cannot work with this folder (``WORKER_PRELOAD``).
        RuntimeError: ``SERVING_DEVICE=cuda`` on a host without a GPU.
    """
    started = time.perf_counter()
    thread_count = threads.threads_per_worker(settings.worker_count, settings.threads)
    options = settings.engine_options(thread_count)
    try:
        source = locate_model(settings.model_dir, settings.model_path, settings.architecture)
        choice = choose_runtime(options, source.manifest)
        if settings.preload:
            refuse_unsafe_preload(choice, thread_count)
        engine = load_engine(choice, options, source)
        name, version = model_identity(settings.model_dir, source.manifest)
        text = None
        if source.manifest.takes_text:
            # the tokenizer's own thread pool would compete with the other workers for the cores, as torch's would
            os.environ.setdefault("TOKENIZERS_PARALLELISM", "true" if thread_count > 1 else "false")
            text = load_text_encoder(source.weights.parent, source.manifest)
        predictor = Predictor(
            engine, source.manifest, source.weights, thread_count, name, version, settings.chunk_rows, text
        )
        warm_up_s = warm_up(predictor)
    except ModelFolderError as err:
        raise ModelFolderError(f"{err}\n{doctor_hint(settings.model_dir)}") from err
    logger.info(
        "model ready: %s version %s from %s (%s, %s, architecture %s), runtime %s (%s) on %s, %d thread(s), "
        "channels_last %s, chunks of %d rows, warm-up %.1f ms, start-up %.2f s",
        name,
        version,
        source.weights,
        formats.DESCRIPTIONS[formats.detect_format(source.weights)],
        "with manifest" if source.has_manifest else "no manifest: default config",
        source.manifest.architecture,
        f"{engine.name} ({(source.manifest.onnx.file if source.manifest.onnx else source.weights.name)})"
        if choice.is_onnx
        else engine.name,
        choice.reason,
        engine.device,
        thread_count,
        engine.channels_last,
        predictor.chunk_rows,
        warm_up_s * 1e3,
        time.perf_counter() - started,
    )
    return predictor


def refuse_unsafe_preload(choice: RuntimeChoice, thread_count: int) -> None:
    """``WORKER_PRELOAD=true`` loads the model in the master process, and the workers are forks of it. A process
    forked from one that ran multi-threaded work inherits a thread pool without its threads, and hangs on its
    first request: with PyTorch, every worker did. ONNX Runtime with one thread per worker runs on the calling
    thread only, so its workers answer (a test kills one and checks its replacement), and the model's memory is
    shared between them (``docs/performance.md``).

    Raises:
        SettingsError: preloading with the PyTorch runtime, or with more than one thread per worker.
    """
    if not choice.is_onnx:
        raise SettingsError(
            "WORKER_PRELOAD=true runs init() in the server's master process before it forks the workers, and torch "
            "does not survive that fork: measured with this template, every worker hung on its first request. "
            f"PyTorch serves this model because {choice.reason}. Unset WORKER_PRELOAD (each worker then "
            "loads the model itself), or serve an ONNX export (python -m model_folder.onnx_export FOLDER)."
        )
    if thread_count > 1:
        raise SettingsError(
            f"WORKER_PRELOAD=true with {thread_count} threads per worker: ONNX Runtime's thread pool, made in the "
            "master process, would not survive the fork into the workers. Set TORCH_NUM_THREADS=1 (or WORKER_COUNT to "
            "the number of cores), or unset WORKER_PRELOAD."
        )


def warm_up(predictor: Predictor) -> float:
    """Run the warm-up batches; a model that fails on them fails start-up, not a client's request.

    Raises:
        ModelFolderError: the model loaded but cannot run on input shaped as its spec says.
    """
    try:
        return predictor.warm_up()
    except ModelFolderError as err:  # already says what and how (an output that is not one tensor of scores)
        raise ModelFolderError(f"{predictor.weights} loaded, but on a warm-up batch {err}") from err
    except Exception as err:  # any failure here is the model's, and must stop the deployment
        shape = ", ".join(map(str, predictor.manifest.input.shape))
        file_format = formats.detect_format(predictor.weights)
        if file_format == formats.TORCH_EXPORT:
            fix = (
                "A torch.export program takes only the batch sizes it was exported for: export it with a dynamic "
                "batch dimension, dynamic_shapes={'x': {0: torch.export.Dim('batch')}}."
            )
        else:
            fix = (
                "Check that the input spec's shape is the one the model was trained on (the manifest's, or "
                "MODEL_ARCHITECTURE's), and that the model takes any number of rows."
            )
        raise ModelFolderError(
            f"{predictor.weights} loaded, but the model fails on a warm-up batch of zeros shaped (rows, {shape}): "
            f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}. {fix}"
        ) from err
