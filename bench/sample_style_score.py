"""The "before" exhibit, baseline (b) of ``make bench``: a scoring script in the style of the public samples.

Do not copy this file. It is kept to measure what the template replaces:
- a whole pickled model loaded with ``weights_only=False``, which runs any code in the file (here it only loads
  the file the benchmark itself just wrote);
- a path joined onto ``AZUREML_MODEL_DIR`` by hand, which breaks when the registration layout changes;
- ``json.loads`` into ``torch.tensor`` through Python lists, and no input validation (bad input is a 500);
- torch's default thread count in every worker, so the workers fight over the cores.
"""

import json
import os

import torch

model = None


def init():
    global model
    model_path = os.path.join(os.getenv("AZUREML_MODEL_DIR"), "model.pt")
    model = torch.load(model_path, map_location="cpu", weights_only=False)
    model.eval()


def run(raw_data):
    data = json.loads(raw_data)["data"]
    x = torch.tensor(data, dtype=torch.float32).reshape(-1, 1, 8, 8) / 16.0
    with torch.no_grad():
        logits = model(x)
    return {"predictions": logits.argmax(dim=1).tolist(), "probabilities": torch.softmax(logits, dim=1).tolist()}
