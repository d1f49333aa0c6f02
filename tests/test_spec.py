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
