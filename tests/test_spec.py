"""Input and output specs: accepted row shapes, descriptions for messages, preprocessing, validation."""

from __future__ import annotations

import numpy as np
import pytest

from model_arch.spec import InputSpec, OutputSpec


def test_accepted_row_shapes_are_flat_full_and_trimmed() -> None:
    spec = InputSpec(name="x", shape=(1, 8, 8))

    assert spec.size == 64
    assert spec.accepted_row_shapes == ((64,), (1, 8, 8), (8, 8))


def test_a_flat_spec_accepts_only_flat_rows() -> None:
    assert InputSpec(name="x", shape=(5,)).accepted_row_shapes == ((5,),)


def test_describe_row_names_count_nesting_and_range() -> None:
    spec = InputSpec(name="x", shape=(1, 8, 8), minimum=0, maximum=16)

    assert spec.describe_row() == "64 numbers (flat, or nested 1×8×8 or 8×8) between 0 and 16"


def test_preprocess_applies_subtract_and_divide_and_reshapes() -> None:
    spec = InputSpec(name="x", shape=(2, 2), subtract=1.0, divide=2.0)

    out = spec.preprocess(np.array([[1, 3, 5, 7]]))

    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [[[0, 1], [2, 3]]])


def test_specs_round_trip_through_dicts() -> None:
    spec = InputSpec(name="x", shape=(3,), minimum=-1.5, maximum=2, description="d")
    output = OutputSpec(kind="classification", labels=("cat", "dog"))

    assert InputSpec.from_dict(spec.to_dict()) == spec
    assert OutputSpec.from_dict(output.to_dict()) == output


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"shape": ()}, "positive dimensions"),
        ({"shape": (0, 3)}, "positive dimensions"),
        ({"shape": (3,), "dtype": "int8"}, "'int8' is not supported"),
        ({"shape": (3,), "divide": 0}, "finite non-zero"),
        ({"shape": (3,), "divide": [1, 0, 1]}, "finite non-zero"),
        ({"shape": (3, 2, 2), "subtract": [1, 2]}, "has 2 values; expected one number, or one per entry"),
        ({"shape": (3,), "subtract": "0.5"}, "a number or a list of numbers"),
    ],
)
def test_input_spec_rejects_impossible_values(kwargs: dict, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        InputSpec(name="x", **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"kind": "ranking", "labels": (1,)}, "'ranking' is not supported"),
        ({"kind": "classification"}, "at least one class"),
        ({"kind": "regression"}, "at least one regression output"),
        ({"kind": "regression", "names": ("y",), "select": -1}, "an index"),
        ({"kind": "regression", "names": ("y",), "select": True}, "an index"),
    ],
)
def test_output_spec_rejects_impossible_values(kwargs: dict, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        OutputSpec(**kwargs)


def test_named_features_describe_rows_and_must_match_the_shape() -> None:
    spec = InputSpec(name="x", shape=(3,), names=("a", "b", "c"))

    assert spec.describe_row() == "3 numbers (a, b, c; or an object with those keys)"
    with pytest.raises(ValueError, match="must name each"):
        InputSpec(name="x", shape=(2,), names=("a", "b", "c"))


def test_subtract_and_divide_apply_per_channel_to_images() -> None:
    spec = InputSpec(name="image", shape=(3, 2, 2), subtract=[10, 20, 30], divide=[2, 4, 5])
    rows = np.stack([np.full((2, 2), 10.0), np.full((2, 2), 40.0), np.full((2, 2), 80.0)])[None]  # (1, 3, 2, 2)

    batch = spec.preprocess(rows.reshape(1, -1))  # a flat row, as a client may send it

    assert batch.shape == (1, 3, 2, 2) and batch.dtype == np.float32
    np.testing.assert_array_equal(batch[0, :, 0, 0], [0.0, 5.0, 10.0])


def test_subtract_and_divide_apply_per_feature_to_rows() -> None:
    spec = InputSpec(name="x", shape=(3,), subtract=[1, 2, 3], divide=[1, 10, 100])

    np.testing.assert_allclose(spec.preprocess(np.array([[2.0, 12.0, 103.0]])), [[1.0, 1.0, 1.0]])
    assert InputSpec.from_dict(spec.to_dict()) == spec
    assert spec.to_dict()["subtract"] == [1.0, 2.0, 3.0]


def test_a_manifest_spec_written_before_vectors_reads_unchanged() -> None:
    old = {"name": "pixels", "shape": [1, 8, 8], "dtype": "float32", "minimum": 0.0, "maximum": 16.0}
    old |= {"subtract": 0.0, "divide": 16.0, "description": "", "names": []}

    spec = InputSpec.from_dict(old)

    assert (spec.subtract, spec.divide) == (0.0, 16.0) and spec.to_dict() == old
    np.testing.assert_allclose(spec.preprocess(np.full((1, 64), 8)), np.full((1, 1, 8, 8), 0.5))


def test_an_output_spec_names_the_scores_in_a_tuple_or_dict() -> None:
    assert OutputSpec(kind="classification", labels=(0, 1), select=0).to_dict()["select"] == 0
    by_key = OutputSpec(kind="classification", labels=(0, 1), select="logits")
    assert OutputSpec.from_dict(by_key.to_dict()) == by_key
    assert "select" not in OutputSpec(kind="classification", labels=(0, 1)).to_dict()  # old manifests unchanged
