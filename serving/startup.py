"""Start-up for one worker: settings, device, threads, find the model, load it safely, warm it up.

``score.init()`` calls ``load_predictor()`` once per worker process. Anything wrong raises an error whose
message names the folder, what was found and the fix; the inference server then exits non-zero, so a broken
deployment fails at start-up instead of answering requests wrongly.
"""

from __future__ import annotations

import logging
import time

from model_arch.model_folder import load_model
from serving import runtime
from serving.locate import locate_model
from serving.predictor import Predictor
from serving.settings import Settings

logger = logging.getLogger(__name__)


def load_predictor(settings: Settings) -> Predictor:
    """Find, load and warm up the model that ``settings`` point at."""
    started = time.perf_counter()
    device = runtime.select_device(settings.device)
    threads = runtime.threads_per_worker(settings.worker_count, settings.threads)
    runtime.configure_threads(threads)

    source = locate_model(settings.model_dir, settings.model_path, settings.architecture)
    model = load_model(source.manifest, source.weights, device)
    predictor = Predictor(model, source.manifest, device, source.weights, threads)
    warm_up_s = predictor.warm_up()
    logger.info(
        "model ready: %s (%s, architecture %s), device %s, %d torch thread(s), warm-up %.1f ms, start-up %.2f s",
        source.weights,
        "with manifest" if source.has_manifest else "no manifest: default config",
        source.manifest.architecture,
        device,
        threads,
        warm_up_s * 1e3,
        time.perf_counter() - started,
    )
    return predictor
