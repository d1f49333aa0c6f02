"""The model folder, end to end: what a file is (``formats``), the manifest and its checksums (``manifest``),
writing and safely loading PyTorch weights (``weights``), the ONNX export and its check (``onnx_export``), finding
the folder under ``AZUREML_MODEL_DIR`` (``locate``), and the two engines that run it (``engines`` chooses between
``onnx_engine`` and ``torch_engine``).

Training writes folders with it and serving reads them with it, so the two sides cannot drift apart. It imports
``model_arch`` (the architectures), never ``serving`` or ``training``; nothing here imports torch until a module
that needs it is imported (``weights``, ``torch_engine``), so a worker that serves an ONNX export never does.
"""
