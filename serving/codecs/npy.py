"""``application/x-npy``: the bytes ``numpy.save`` writes, one array shaped ``(rows, ...)`` in; and, for a client that
sends ``Accept: application/x-npy`` with any request, the model's values as one float32 array out.

Read without pickle and without copying: the fast path for large batches, with no JSON to parse or render.
"""

from __future__ import annotations

import io

import numpy as np

from model_arch.spec import InputSpec
from serving.codecs.types import Decoded, ReplyContext
from serving.errors import ClientError
from serving.inputs import array_to_batch, shape_size
from serving.predictor import Prediction

NPY = "application/x-npy"
_HEADER_READERS = {
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
    (3, 0): np.lib.format.read_array_header_2_0,  # 3.0 differs only in allowing UTF-8 in field names (refused)
}


class NpyCodec:
    name = "npy"
    media_type = NPY
    form = ".npy (rows, ...)"

    def decode(self, body: bytes, spec: InputSpec, max_rows: int) -> Decoded:
        """The array in ``body`` as the model's input batch: the header's dtype and shape are checked, and its
        size against the body's length, before anything is computed from them or allocated; then the array is a
        view of the body's bytes.

        Raises:
            ClientError: 400 for a body that is not a plain .npy array, 413 for too many rows, 422 for an array
                that does not fit the model.
        """
        stream = io.BytesIO(body)
        try:
            version = np.lib.format.read_magic(stream)
            read_header = _HEADER_READERS.get(version)
            if read_header is None:
                raise ValueError(f"format version {version[0]}.{version[1]} is not one numpy writes")
            shape, fortran_order, dtype = read_header(stream)
        # numpy's header reader (at most 10,000 bytes, evaluated as a literal) raises ValueError for most defects, and
        # other types for literals it does not expect; all of them are a defect of the client's header.
        except Exception as err:
            raise ClientError(
                400, "invalid_npy", f"the body is not a .npy array ({_cut(err)}); send the bytes numpy.save writes"
            ) from err
        if dtype.hasobject:
            raise ClientError(400, "invalid_npy", "the .npy array holds Python objects, which need pickle (refused)")
        if dtype.kind not in "iuf":  # also a structured or subarray dtype (kind V), or one of item size 0
            raise ClientError(
                422,
                "non_numeric",
                f"array has dtype {_cut(dtype)}; expected numbers (float32, float64 or integers)",
            )
        size = shape_size(shape, "the .npy header's shape", 400, "invalid_npy")
        offset = stream.tell()
        if len(body) - offset != size * dtype.itemsize:
            raise ClientError(
                400,
                "invalid_npy",
                f"the .npy header declares shape {list(shape)} of {dtype} ({size * dtype.itemsize} bytes) but the body "
                f"carries {len(body) - offset} bytes after it",
            )
        array = np.frombuffer(body, dtype=dtype, count=size, offset=offset)
        array = array.reshape(shape, order="F" if fortran_order else "C")
        return Decoded(array_to_batch(array, spec, max_rows, "array"), self)

    def encode(self, prediction: Prediction, decoded: Decoded, context: ReplyContext) -> bytes:
        """float32 ``(rows, outputs)``: probabilities in label order, or values in output order (``GET /score``)."""
        buffer = io.BytesIO()
        np.save(buffer, prediction.values, allow_pickle=False)
        return buffer.getvalue()


def _cut(value: object, limit: int = 200) -> str:
    """``str(value)`` cut to ``limit`` characters: a header's text is the client's, up to 10,000 bytes of it."""
    text = str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


NPY_CODEC = NpyCodec()
