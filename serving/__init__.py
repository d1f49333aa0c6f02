"""The scoring side of the template: settings, finding and loading the model, parsing requests, answering.

``score.py`` is a thin entry point over these modules; tests call them directly with a temporary model folder.
"""
