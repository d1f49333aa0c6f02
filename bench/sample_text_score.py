"""The "before" exhibit for text models in ``make bench``: a scoring script in the style of the public samples.

Do not copy this file. It is kept to measure what the template replaces: a ``transformers`` pipeline built in
``init()`` from a path joined by hand, called per request on the parsed texts, with torch's default thread count
in every worker (the workers fight over the cores), no limits on texts or their length, and bad input a 500.
"""

import json
import os

from transformers import pipeline

classifier = None


def init():
    global classifier
    model_path = os.path.join(os.getenv("AZUREML_MODEL_DIR"), "model")
    classifier = pipeline("text-classification", model=model_path, tokenizer=model_path, device="cpu")


def run(raw_data):
    texts = json.loads(raw_data)["data"]
    return {"predictions": classifier(texts, truncation=True)}
