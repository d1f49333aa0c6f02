"""Batch scoring: the same model folder on an Azure ML batch endpoint (``batch_score.py``), and its local runner.

``batch.readers`` reads one input file by its kind, ``batch.scoring`` scores a mini-batch of files, ``batch.output``
renders the output rows, ``batch.runner`` drives ``batch_score.py`` locally the way the batch runtime does
(``make batch-local``). docs/batch.md says how it fits together.
"""
