"""Azure ML batch scoring script: ``init()`` loads the model once per worker process, ``run(mini_batch)`` scores a
list of files and returns one output line per item.

Used as a model batch deployment's ``code_configuration.scoring_script`` (``deploy/batch/deployment.yml``) and by the
local runner (``make batch-local``, ``batch.runner``). It finds and loads the model exactly as ``score.py`` does
(``serving.startup.load_predictor``: the folder under ``AZUREML_MODEL_DIR``, its manifest, the safe loader, threads
from ``WORKER_COUNT`` or ``TORCH_NUM_THREADS``); the files are read by their kind (``batch.readers``), and the lines
are described in ``batch.output`` and docs/batch.md.
"""

from batch import scoring
from serving import logs
from serving.settings import Settings
from serving.startup import load_predictor

_predictor = None
_settings = None


def init():
    """Find, load and warm up the model. Raises (and the batch runtime fails the mini-batches) if it cannot."""
    global _predictor, _settings
    logs.attach_to_server_logging()  # no server here: the template's loggers write to stdout, which the runtime keeps
    scoring.attach_logging()
    _settings = scoring.BatchSettings.from_env()
    _predictor = load_predictor(Settings.from_env())


def run(mini_batch):
    """``mini_batch``: a list of file paths. Returns one line of JSON per item, and one per file not scored."""
    return scoring.score_files(mini_batch, _predictor, _settings)
