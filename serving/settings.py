"""Every environment variable the scoring script reads, parsed once in ``init()``.

Set them in the deployment YAML's ``environment_variables`` (see ``deploy/``) or in the shell for local runs.
The README's "Settings" table lists the same names; keep the two together.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass

from model_folder.engines import EngineOptions
from model_folder.formats import CODE_FORMATS, TrustPolicy
from serving.codecs.texts import TextLimits

ROWS_BODY_BYTES = 1_500_000  # the default body limit for rows of numbers
IMAGE_BODY_BYTES = 20_000_000  # and for a model that takes images


class SettingsError(ValueError):
    """An environment variable holds a value the scoring script cannot use."""


@dataclass(frozen=True)
class Settings:
    """The scoring script's configuration.

    Attributes:
        model_dir: ``AZUREML_MODEL_DIR``, set by Azure ML (and by ``azmlinfsrv --model_dir``).
        model_path: ``MODEL_PATH``, a file or folder to load, relative to ``model_dir`` or absolute;
            unset means "search ``model_dir``".
        architecture: ``MODEL_ARCHITECTURE``, the registered architecture that a weights file without a
            manifest is loaded as; unset: the demo's for a state_dict, and a file that carries its own code or
            graph must name a spec-only one (``model_folder.weights.manifest_for_bare_weights``).
        device: ``SERVING_DEVICE``: ``auto`` (CUDA when available), ``cpu`` or ``cuda``.
        worker_count: ``WORKER_COUNT``, the inference server's worker processes on this instance.
        threads: ``TORCH_NUM_THREADS``; unset means "this instance's cores / ``WORKER_COUNT``, at least 1".
        max_batch_rows: ``MAX_BATCH_ROWS``, the most rows one request may carry.
        max_body_bytes: ``MAX_BODY_BYTES``, the largest request body, checked before it is read; unset (None): 1.5
            MB for rows of numbers, near the payload size the endpoint gateway handles well, and 20 MB for a model
            that takes images, whose clients send phone photos of 3-8 MB, a third larger in base64 (``body_limit``).
        max_images: ``MAX_IMAGES``, the most images one request may carry (each is decoded and resized).
        chunk_rows: ``CHUNK_ROWS``, the most rows in one forward pass; larger requests run in chunks.
        channels_last: ``CHANNELS_LAST``: ``auto`` (on for image input, shaped (channels, height, width)),
            ``on`` or ``off``.
        runtime: ``MODEL_RUNTIME``: ``auto`` (ONNX Runtime when the model folder has an ONNX export and the
            device is the CPU, else PyTorch), ``torch`` or ``onnx`` (see ``model_folder.engines``).
        allow_code_formats: ``ALLOW_CODE_FORMATS``, comma-separated formats that carry code and may load
            (``torchscript``, ``torch_export``); empty by default.
        trusted_pickle_globals: ``TRUSTED_PICKLE_GLOBALS``, comma-separated ``module.Class`` names the safe
            unpickler may use (for a whole pickled module you trust); empty by default.
        preload: ``WORKER_PRELOAD=true``, the inference server's own setting: ``init()`` runs once in its master
            process, before it forks the workers. Allowed only where that is safe (see ``model_folder.engines``).
        server_access_log: ``SERVER_ACCESS_LOG=on`` keeps the server's own two access lines for each scored request
            beside the template's ``score`` line; ``off`` by default (see ``serving.logs``).
        body_timeout_s: ``BODY_TIMEOUT_S``, the most seconds a worker waits for a request body (for all of it, and
            for each next piece of it); past it the request gets a 408 and the worker is free. 10 by default: the
            deployment's ``request_timeout_ms`` (10,000 in ``deploy/``), past which the gateway has answered the
            client already (docs/reliability.md).
        max_texts: ``MAX_TEXTS``, the most texts one request to a text model may carry (413 above it).
        max_text_chars: ``MAX_TEXT_CHARS``, the most characters one text may have (413 above it); the tokenizer keeps
            at most the model's ``max_length`` tokens of it, but reading a text costs time in its length.
        data_collection: ``DATA_COLLECTION``: ``auto`` (collect inputs and outputs for model monitoring when the
            deployment's ``data_collector`` turns the Collector on) or ``off`` (never); see ``serving.collection``.
    """

    model_dir: str | None
    model_path: str | None = None
    architecture: str | None = None
    device: str = "auto"
    worker_count: int = 1
    threads: int | None = None
    max_batch_rows: int = 1024
    max_body_bytes: int | None = None
    max_images: int = 64
    chunk_rows: int = 256
    channels_last: str = "auto"
    runtime: str = "auto"
    allow_code_formats: frozenset[str] = frozenset()
    trusted_pickle_globals: tuple[str, ...] = ()
    preload: bool = False
    server_access_log: bool = False
    body_timeout_s: float = 10.0
    max_texts: int = 256
    max_text_chars: int = 10_000
    data_collection: bool = True

    def body_limit(self, takes_images: bool) -> int:
        """The largest request body: ``MAX_BODY_BYTES``, or its default for the model's input kind."""
        if self.max_body_bytes is not None:
            return self.max_body_bytes
        return IMAGE_BODY_BYTES if takes_images else ROWS_BODY_BYTES

    @property
    def trust(self) -> TrustPolicy:
        """What the operator opted into by name, for the loader."""
        return TrustPolicy(self.allow_code_formats, self.trusted_pickle_globals)

    @property
    def text_limits(self) -> TextLimits:
        """What one request to a text model may carry."""
        return TextLimits(self.max_texts, self.max_text_chars)

    def engine_options(self, threads: int) -> EngineOptions:
        """What the model folder's engines need of these settings, with this worker's thread count."""
        return EngineOptions(self.runtime, self.device, threads, self.channels_last, self.trust)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        return cls(
            model_dir=env.get("AZUREML_MODEL_DIR") or None,
            model_path=env.get("MODEL_PATH") or None,
            architecture=env.get("MODEL_ARCHITECTURE") or None,
            device=_choice(env, "SERVING_DEVICE", ("auto", "cpu", "cuda")),
            worker_count=_positive_int(env, "WORKER_COUNT", 1),
            threads=_positive_int(env, "TORCH_NUM_THREADS", None),
            max_batch_rows=_positive_int(env, "MAX_BATCH_ROWS", 1024),
            max_body_bytes=_positive_int(env, "MAX_BODY_BYTES", None),
            max_images=_positive_int(env, "MAX_IMAGES", 64),
            chunk_rows=_positive_int(env, "CHUNK_ROWS", 256),
            channels_last=_choice(env, "CHANNELS_LAST", ("auto", "on", "off")),
            runtime=_choice(env, "MODEL_RUNTIME", ("auto", "torch", "onnx")),
            allow_code_formats=frozenset(_names(env, "ALLOW_CODE_FORMATS", allowed=CODE_FORMATS)),
            trusted_pickle_globals=tuple(_names(env, "TRUSTED_PICKLE_GLOBALS")),
            preload=env.get("WORKER_PRELOAD", "").strip().lower() == "true",
            server_access_log=_choice(env, "SERVER_ACCESS_LOG", ("off", "on")) == "on",
            body_timeout_s=_positive_number(env, "BODY_TIMEOUT_S", 10.0),
            max_texts=_positive_int(env, "MAX_TEXTS", 256),
            max_text_chars=_positive_int(env, "MAX_TEXT_CHARS", 10_000),
            data_collection=_choice(env, "DATA_COLLECTION", ("auto", "off")) == "auto",
        )


def _choice(env: Mapping[str, str], name: str, allowed: tuple[str, ...]) -> str:
    """One of ``allowed`` (case-insensitive); the first is the default."""
    value = env.get(name, "").strip().lower() or allowed[0]
    if value not in allowed:
        raise SettingsError(f"{name} is {value!r}; expected one of {', '.join(repr(a) for a in allowed)}")
    return value


def _names(env: Mapping[str, str], name: str, allowed: tuple[str, ...] | None = None) -> list[str]:
    """A comma-separated list, blanks dropped; each item checked against ``allowed`` when given."""
    items = [item.strip() for item in env.get(name, "").split(",") if item.strip()]
    unknown = [item for item in items if allowed is not None and item not in allowed]
    if unknown:
        raise SettingsError(f"{name} names {unknown}; expected a comma-separated list of {list(allowed)}")
    return items


def _positive_int(env: Mapping[str, str], name: str, default: int | None) -> int | None:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise SettingsError(f"{name} is {raw!r}; expected a whole number of at least 1")
    return value


def _positive_number(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not 0 < value < math.inf:
        raise SettingsError(f"{name} is {raw!r}; expected a number of seconds above 0, such as 10 or 2.5")
    return value
