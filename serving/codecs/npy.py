"""``application/x-npy``: the bytes ``numpy.save`` writes, one array shaped ``(rows, ...)`` in; and, for a client that
sends ``Accept: application/x-npy`` with any request, the model's values as one float32 array out.

Read without pickle and without copying: the fast path for large batches, with no JSON to parse or render.
"""

from __future__ import annotations

import io
import math

import numpy as np

from model_arch.spec import InputSpec
from serving.codecs.types import Decoded, ReplyContext
from serving.errors import ClientError
from serving.inputs import array_to_batch
from serving.predictor import Prediction

NPY = "application/x-npy"


class NpyCodec:
    name = "npy"
    media_type = NPY
    form = ".npy (rows, ...)"

    def decode(self, body: bytes, spec: InputSpec, max_rows: int) -> Decoded:
        """The array in ``body`` as the model's input batch: the header is checked against the body's length
        before anything is allocated, then the array is a view of the body's bytes.

        Raises:
            ClientError: 400 for a body that is not a plain .npy array, 413 for too many rows, 422 for an array
                that does not fit the model.
        """
        stream = io.BytesIO(body)
        try:
            version = np.lib.format.read_magic(stream)
            read_header = (
                np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            )
            shape, fortran_order, dtype = read_header(stream)
        except (ValueError, OSError, EOFError) as err:
            raise ClientError(
                400, "invalid_npy", f"the body is not a .npy array ({err}); send the bytes numpy.save writes"
            ) from err
        if dtype.hasobject:
            raise ClientError(400, "invalid_npy", "the .npy array holds Python objects, which need pickle (refused)")
        needed = math.prod(shape) * dtype.itemsize
        offset = stream.tell()
        if len(body) - offset != needed:
            raise ClientError(
                400,
                "invalid_npy",
                f"the .npy header declares shape {list(shape)} of {dtype} ({needed} bytes) but the body carries "
                f"{len(body) - offset} bytes after it",
            )
        array = np.frombuffer(body, dtype=dtype, count=math.prod(shape), offset=offset)
        array = array.reshape(shape, order="F" if fortran_order else "C")
        return Decoded(array_to_batch(array, spec, max_rows, "array"), self)

    def encode(self, prediction: Prediction, decoded: Decoded, context: ReplyContext) -> bytes:
        """float32 ``(rows, outputs)``: probabilities in label order, or values in output order (``GET /score``)."""
        buffer = io.BytesIO()
        np.save(buffer, prediction.values, allow_pickle=False)
        return buffer.getvalue()


NPY_CODEC = NpyCodec()
