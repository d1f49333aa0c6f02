"""``make bench``'s image rows (``python -m bench.run --only images`` runs them alone): the shapes example served by the
template against an image script in the public samples' style, on real servers, 2 workers each, side by side.

Loads: JPEG pictures as clients send them, at the example's scale (64×64, resized to 32×32 by the spec), one per
request as a raw ``image/jpeg`` body, and 16 per request as a multipart upload (``file`` parts), 8 clients.
Reported: images/s, worker CPU per image, and the share of it that decoding and preprocessing take (the same
``InputSpec.read_images`` the worker runs, timed in process on one thread, over the worker CPU per image of the
1-image load). One phone-sized photo (1600×1200 JPEG) load shows what the reduced-scale JPEG decode saves.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from urllib3 import encode_multipart_formdata

from harness.layout import lay_out_like_azure
from harness.server import InferenceServer
from model_folder.manifest import read_manifest
from model_folder.weights import load_model

SERVERS = {  # name -> entry script
    "sample": "bench/sample_style_image_score.py",
    "template": "score.py",
}
CLIENTS = 8
LOADS = {  # name -> images per request
    "1 JPEG": 1,
    "16 JPEGs multipart": 16,
    "1 photo 1600×1200": 1,
}
KEY_LOAD = "1 JPEG"
TARGET_VS_SAMPLE = 3.0  # images/s at 1 image per request, 8 clients
TARGET_DECODE_SHARE = 0.5  # of a worker's CPU per image


def shapes_folder(out: Path) -> Path:
    """The shapes example, trained here (seconds) with its ONNX export, unless an earlier run left one."""
    from model_folder.onnx_export import export_onnx
    from training.train import train_shapes

    folder = out / "shapes-model"
    if not (folder / "manifest.json").is_file():
        train_shapes(folder)
        export_onnx(folder)
    return folder


def payloads(out: Path) -> dict[str, tuple[Path, str]]:
    """name -> (body file, Content-Type)."""
    from PIL import Image

    from training.data import shapes_images

    blobs, _ = shapes_images(16, seed=11, image_format="JPEG")
    raw = out / "one.jpg"
    raw.write_bytes(blobs[0])
    parts = [("file", (f"{i}.jpg", blob, "image/jpeg")) for i, blob in enumerate(blobs)]
    body, content_type = encode_multipart_formdata(parts)
    multipart = out / "sixteen.multipart"
    multipart.write_bytes(body)
    photo = Image.open(raw).convert("RGB").resize((1600, 1200), Image.Resampling.BICUBIC)
    large = out / "photo.jpg"
    photo.save(large, "JPEG", quality=90)
    return {
        "1 JPEG": (raw, "image/jpeg"),
        "16 JPEGs multipart": (multipart, content_type),
        "1 photo 1600×1200": (large, "image/jpeg"),
    }


def model_dirs(folder: Path, out: Path) -> dict[str, Path]:
    """AZUREML_MODEL_DIR for each server: the template's model folder; the sample's whole pickled model."""
    manifest = read_manifest(folder)
    model = load_model(manifest, folder / manifest.weights_file, torch.device("cpu"))
    sample = out / "sample-images" / "shapes-cnn" / "1"
    sample.mkdir(parents=True, exist_ok=True)
    torch.save(model, sample / "model.pt")
    return {"sample": sample, "template": lay_out_like_azure(folder, out / "template-images", "shapes-cnn")}


def decode_ms_per_image(folder: Path, body: Path, repeats: int = 200) -> float:
    """Median in-process milliseconds of ``read_images`` (decode, resize, crop, normalise) for one picture, one
    thread: what a worker spends on a picture before the model."""
    torch.set_num_threads(1)
    spec = read_manifest(folder).input
    blob = body.read_bytes()
    times = []
    for _ in range(repeats):
        started = time.process_time()
        spec.read_images([blob])
        times.append((time.process_time() - started) * 1e3)
    return float(np.median(times))


def benchmark(out: Path, seconds: float, generator: Callable, cpu_seconds: Callable[[list[int]], float | None]) -> dict:
    """Every server under every load; returns the runs, the decode share and the targets, for the report."""
    out.mkdir(parents=True, exist_ok=True)
    folder = shapes_folder(out)
    bodies = payloads(out)
    dirs = model_dirs(folder, out / "models")
    runs = []
    with contextlib.ExitStack() as stack:
        servers = {
            name: stack.enter_context(InferenceServer(dirs[name], workers=2, entry_script=script))
            for name, script in SERVERS.items()
        }
        for load, per_request in LOADS.items():
            body, content_type = bodies[load]
            for name, server in servers.items():
                pids = server.worker_pids()
                before = cpu_seconds(pids)
                rate, p50, p99, errors = generator(server.url + "/score", body, content_type, CLIENTS, seconds)
                after = cpu_seconds(pids)
                images = rate * seconds * per_request
                cpu = None if before is None or after is None or not images else (after - before) / images * 1e3
                runs.append(
                    {
                        "server": name,
                        "load": load,
                        "images/s": round(rate * per_request, 1),
                        "p50 ms": round(p50, 2),
                        "p99 ms": round(p99, 2),
                        "errors": errors,
                        "worker CPU ms/image": None if cpu is None else round(cpu, 3),
                    }
                )
                print(f"  images {name:9} {load:20} {rate * per_request:8.1f} images/s  errors {errors}", flush=True)
    decode_ms = {load: round(decode_ms_per_image(folder, bodies[load][0]), 3) for load in LOADS if LOADS[load] == 1}
    return {"runs": runs, "decode_ms_per_image": decode_ms, "targets": targets(runs, decode_ms)}


def _value(runs: list[dict], server: str, load: str, key: str) -> float | None:
    return next((r[key] for r in runs if (r["server"], r["load"]) == (server, load)), None)


def targets(runs: list[dict], decode_ms: dict[str, float]) -> list[str]:
    lines = []
    template, sample = (_value(runs, s, KEY_LOAD, "images/s") for s in ("template", "sample"))
    if template and sample:
        factor = template / sample
        verdict = "met" if factor >= TARGET_VS_SAMPLE else "NOT met"
        lines.append(f"{verdict}: {KEY_LOAD}, 2 workers, {CLIENTS} clients: template >= {TARGET_VS_SAMPLE:g}x sample "
                     f"images/s (measured {factor:.2f}x)")  # fmt: skip
    cpu = _value(runs, "template", KEY_LOAD, "worker CPU ms/image")
    if cpu:
        share = decode_ms[KEY_LOAD] / cpu
        verdict = "met" if share <= TARGET_DECODE_SHARE else "NOT met"
        lines.append(f"{verdict}: decode + preprocess <= {TARGET_DECODE_SHARE:g} of a worker's CPU per image "
                     f"(measured {share:.2f}: {decode_ms[KEY_LOAD]} of {cpu} ms)")  # fmt: skip
    return lines


def markdown(images: dict) -> list[str]:
    """The report's image section."""
    lines = ["", "## Images (the shapes example, 2 workers, 8 clients)", ""]
    lines += [f"- {t}" for t in images["targets"]]
    lines += ["- Decode + preprocess in process (median ms per picture, one thread): "
              + ", ".join(f"{k} {v}" for k, v in images["decode_ms_per_image"].items()), ""]  # fmt: skip
    columns = ["server", "load", "images/s", "p50 ms", "p99 ms", "errors", "worker CPU ms/image"]
    lines += ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join("-" if r[c] is None else str(r[c]) for c in columns) + " |" for r in images["runs"]]
    return lines
