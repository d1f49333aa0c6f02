"""Training the demo models: the demo data (``data``), the training command (``train``, which writes a model folder
with ``model_folder``), and ``make new-model``'s scaffold (``scaffold``). Never imported by serving."""
