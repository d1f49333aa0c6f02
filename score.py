"""Azure ML scoring script: ``init()`` loads the model once per worker, ``run()`` answers ``/score``.

Used as the deployment's ``code_configuration.scoring_script`` and by ``azmlinfsrv --entry_script score.py``.
It stays generic: the model is found under ``AZUREML_MODEL_DIR`` (never a training ``outputs/`` path) and
its architecture and input spec come from the model folder and ``model_arch``, so a new model needs no edit
here. Settings are environment variables (``serving/settings.py``, README "Settings").
"""

import gc

from azureml_inference_server_http.api.aml_request import rawhttp

from serving import collection, http, logs
from serving.settings import Settings
from serving.startup import load_predictor

_settings = None
_predictor = None


def init():
    """Find, load and warm up the model. Raises (and the server exits non-zero) if it cannot."""
    global _settings, _predictor
    _settings = Settings.from_env()
    logs.attach_to_server_logging(server_access_lines=_settings.server_access_log)
    _predictor = load_predictor(_settings)
    collection.start(_settings, _predictor)  # model data collection, when the deployment turns it on
    # What start-up made (the model, the libraries) lives as long as the worker: the garbage collector stops walking
    # it, so a full collection, which requests' short-lived objects trigger now and then, walks only theirs.
    gc.freeze()


@rawhttp
def run(request):
    """POST: score a batch (JSON ``data``/``input_data``, V2, or .npy). GET: describe the model and the contract."""
    return http.handle(request, _predictor, _settings)
