"""Images as a model input: the image spec, the one decoding function training and serving share, and every odd or
hostile picture of tests/image_files.py getting its documented answer."""

from __future__ import annotations

import dataclasses
import io
import json

import numpy as np
import pytest
from PIL import Image

from model_arch import digits_cnn, shapes_cnn
from model_arch.images import ImageError, ImageSpec, decode_image
from model_arch.spec import InputSpec
from tests.helpers import REPO_ROOT
from tests.image_files import ODD_IMAGES, OddImage, encode, photo

SPEC = shapes_cnn.INPUT_SPEC


@pytest.mark.parametrize("case", ODD_IMAGES, ids=[case.name for case in ODD_IMAGES])
def test_every_odd_picture_decodes_or_is_refused_with_its_code(case: OddImage) -> None:
    blob = case.build()

    if case.status == 200:
        batch = SPEC.decode_images([blob])
        assert batch.shape == (1, *SPEC.shape) and batch.dtype == np.float32 and np.isfinite(batch).all()
        return
    with pytest.raises(ImageError) as caught:
        SPEC.decode_images([blob])
    assert (caught.value.status, caught.value.code) == (case.status, case.code)


def test_a_picture_is_turned_upright_by_its_exif_orientation() -> None:
    upright = photo()
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: "rotate 90° clockwise to view"
    sideways = encode(upright.transpose(Image.Transpose.ROTATE_90), "PNG", exif=exif.tobytes())

    turned = SPEC.decode_images([sideways])
    no_exif = dataclasses.replace(SPEC, image=dataclasses.replace(SPEC.image, exif_transpose=False))
    ignored = no_exif.decode_images([sideways])

    np.testing.assert_array_equal(turned, SPEC.decode_images([encode(upright, "PNG")]))
    assert not np.array_equal(turned, ignored)


def test_every_mode_becomes_the_specs_channels() -> None:
    grey = photo().convert("L")
    as_rgb = SPEC.decode_images([encode(grey, "PNG")])

    assert as_rgb.shape == (1, 3, 32, 32)
    np.testing.assert_array_equal(as_rgb[0, 0], as_rgb[0, 1])  # grey: three equal channels


def test_the_pixel_cap_is_checked_from_the_header_before_decoding() -> None:
    small_cap = ImageSpec(resize=32, max_pixels=95 * 72)

    with pytest.raises(ImageError, match=r"96×72 \(6,912 pixels\); this model takes at most 6,840"):
        decode_image(encode(photo(), "PNG"), small_cap, (3, 32, 32))


def test_the_digits_demo_reads_a_picture_of_its_own_data_exactly() -> None:
    rows = json.loads((REPO_ROOT / "deploy" / "sample-request.json").read_text())["data"]
    picture = (REPO_ROOT / "deploy" / "sample-digit.png").read_bytes()

    from_picture = digits_cnn.INPUT_SPEC.decode_images([picture])
    from_numbers = digits_cnn.INPUT_SPEC.preprocess(np.asarray(rows[:1], dtype=np.float32))

    np.testing.assert_allclose(from_picture, from_numbers, atol=1 / 255)  # 8-bit pixels, 0-16 data


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"mode": "CMYK"}, "'RGB' or 'L'"),
        ({"formats": ("JPEG", "HEIC")}, "must name some of"),
        ({"resize": 0}, "a length, [height, width] or null"),
        ({"resize": (32,)}, "a length, [height, width] or null"),
        ({"interpolation": "cubic"}, "interpolation must be in"),
        ({"scale": -1}, "positive number"),
        ({"max_pixels": 0}, "whole number above 0"),
    ],
)
def test_an_image_spec_refuses_impossible_values(kwargs: dict, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        ImageSpec(**kwargs)


def test_an_image_spec_needs_channels_first_input_of_its_mode() -> None:
    with pytest.raises(ValueError, match="1 channel"):
        InputSpec(name="x", shape=(3, 8, 8), image=ImageSpec(mode="L"))
    with pytest.raises(ValueError, match="3 channel"):
        InputSpec(name="x", shape=(32, 32, 3), image=ImageSpec())


def test_the_image_spec_travels_through_the_manifest() -> None:
    spec = InputSpec.from_dict(json.loads(json.dumps(SPEC.to_dict())))

    assert spec == SPEC and spec.image.resize == 32
    assert "image" not in InputSpec(name="x", shape=(3,)).to_dict()  # manifests without images are unchanged


def test_jpeg_pictures_decode_at_a_reduced_scale_and_still_match_training() -> None:
    big = Image.fromarray(np.random.default_rng(1).integers(0, 256, (1200, 1600, 3), dtype=np.uint8))
    blob = encode(big, "JPEG", quality=85)

    first, second = SPEC.decode_images([blob]), SPEC.decode_images([io.BytesIO(blob).getvalue()])

    assert first.shape == (1, 3, 32, 32)
    np.testing.assert_array_equal(first, second)  # the same bytes, the same tensor: what training saw


def test_decoded_pictures_are_laid_out_for_a_model_that_flattens_with_view() -> None:
    import torch

    batch = SPEC.decode_images([encode(photo(), "PNG"), encode(photo(seed=1), "JPEG")])

    assert batch.flags.c_contiguous  # channels first in memory too, as training's tensors are
    assert torch.from_numpy(batch).view(2, -1).shape == (2, 3 * 32 * 32)  # a tutorial's x.view(-1, n) runs on it
