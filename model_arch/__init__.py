"""What you edit to serve your model: the architecture modules (``digits_cnn``, ``linnerud_mlp``, and yours), the
input and output specs they declare (``spec``), and the registry of architectures by name (``registry``).

Imports neither ``model_folder`` nor ``serving`` nor ``training``: those import it.
"""
