"""Model architectures, their input/output specs, training, and the model folder format.

Imported by training (``model_arch.train``) and by serving (``score.py`` through ``serving``) alike, so both
sides agree on how a model is rebuilt and what it expects.
"""
