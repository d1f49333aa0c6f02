"""The "before" exhibit for images, baseline (b) of ``make bench``'s image rows: an image scoring script written the
way Azure ML's binary-payload sample and TorchServe's image handler write it.

Do not copy this file. It is kept to measure what the template replaces:
- a whole pickled model loaded with ``weights_only=False``, which runs any code in the file (here it only loads
  the file the benchmark itself just wrote);
- ``request.files.getlist("file")`` (or the raw body) opened by ``PIL.Image.open`` with every decoder enabled, no
  pixel cap, no EXIF orientation, and a corrupt file answered with a 500;
- torchvision-style transforms per picture (``Resize``, ``CenterCrop``, ``ToTensor``, ``Normalize``; written here
  with Pillow and torch, as torchvision is not a dependency), with constants copied from training by hand;
- torch's default thread count in every worker, so the workers fight over the cores.
"""

import io
import os

import numpy as np
import torch
from azureml_inference_server_http.api.aml_request import rawhttp
from PIL import Image

model = None
MEAN = torch.tensor([127.5, 127.5, 127.5]).view(3, 1, 1) / 255  # copied by hand from the training notebook
STD = torch.tensor([64.0, 64.0, 64.0]).view(3, 1, 1) / 255
LABELS = ["circle", "square", "triangle", "cross"]


def init():
    global model
    model = torch.load(os.path.join(os.getenv("AZUREML_MODEL_DIR"), "model.pt"), map_location="cpu", weights_only=False)
    model.eval()


def transform(picture):
    picture = picture.convert("RGB")
    width, height = picture.size  # Resize(32): the shorter side to 32
    scale = 32 / min(width, height)
    picture = picture.resize((round(width * scale), round(height * scale)), Image.BILINEAR)
    left, top = (picture.width - 32) // 2, (picture.height - 32) // 2  # CenterCrop(32)
    picture = picture.crop((left, top, left + 32, top + 32))
    tensor = torch.from_numpy(np.array(picture)).permute(2, 0, 1).float() / 255  # ToTensor()
    return (tensor - MEAN) / STD  # Normalize(mean, std)


@rawhttp
def run(request):
    files = request.files.getlist("file")
    blobs = [f.read() for f in files] if files else [request.get_data()]
    batch = torch.stack([transform(Image.open(io.BytesIO(blob))) for blob in blobs])
    with torch.no_grad():
        probabilities = torch.softmax(model(batch), dim=1)
    return {
        "predictions": [LABELS[i] for i in probabilities.argmax(dim=1).tolist()],
        "probabilities": probabilities.tolist(),
    }
