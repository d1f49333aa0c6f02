"""The "before" exhibit for batch scoring (``bench/batch.py``): a batch script written the way the public samples
write it (Azure/azureml-examples ``mnist-classifier/deployment-torch/code/batch_driver.py`` and its kin).

Do not copy this file. It is kept to measure what ``batch_score.py`` replaces:
- the weights found by globbing ``AZUREML_MODEL_DIR/*/*.pt`` and loaded into a class imported by hand;
- torch's default thread count in every worker process, so the processes of a node fight over its cores;
- every file read and scored on its own (one forward pass per image), and a DataFrame built per file;
- no validation: a bad file fails the whole mini-batch (or scores garbage).
"""

import glob
import os

import numpy as np
import pandas as pd
import torch
from PIL import Image

from model_arch.digits_cnn import DigitsCNN

model = None


def init():
    global model
    model_path = glob.glob(f"{os.environ['AZUREML_MODEL_DIR']}/*/*.pt")[-1]
    model = DigitsCNN()
    model.load_state_dict(torch.load(model_path, map_location="cpu"))
    model.eval()


def run(mini_batch):
    results = []
    for path in mini_batch:
        if path.endswith(".png"):
            image = Image.open(path).convert("L").resize((8, 8), Image.Resampling.BOX)
            data = pd.DataFrame(np.asarray(image, dtype=np.float32).reshape(1, -1) * 16 / 255)
        else:
            data = pd.DataFrame(np.load(path).reshape(-1, 64))
        x = torch.tensor(data.values, dtype=torch.float32).reshape(-1, 1, 8, 8) / 16.0
        with torch.no_grad():
            probabilities = torch.softmax(model(x), dim=1)
        best, label = probabilities.max(dim=1)
        frame = pd.DataFrame({"file": os.path.basename(path), "class": label.numpy(), "probability": best.numpy()})
        results.append(frame)
    return pd.concat(results)
