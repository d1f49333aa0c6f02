"""``multipart/form-data``: image files uploaded as form parts named ``file`` (or ``file[]``), as Azure ML's
binary-payload sample sends them (``curl -F file=@photo.jpg``), one or more per request; answered like
``{"data": rows}``. A form field ``top_k`` asks for each image's k most probable labels.

The body (already read and size-checked by ``serving.http``) is split by werkzeug's own multipart parser, every
part kept as bytes: a part sent without a file name is still an image, not text.
"""

from __future__ import annotations

from werkzeug.http import parse_options_header
from werkzeug.sansio.multipart import Data, Epilogue, Field, File, MultipartDecoder, NeedData

from model_arch.spec import InputSpec
from serving.answer_options import TOP_K, top_k_from_text
from serving.codecs.json_body import JSON
from serving.codecs.rows import DATA
from serving.codecs.types import Decoded, ReplyContext
from serving.errors import ClientError
from serving.images import images_to_batch
from serving.predictor import Prediction

MULTIPART = "multipart/form-data"
FILE_PARTS = ("file", "file[]")
MAX_PARTS = 1000  # parts of any name; more is not a form a client means


class MultipartCodec:
    name = "multipart"
    media_type = JSON
    form = "multipart/form-data, image files in parts named file"

    def decode(self, body: bytes, content_type: str, spec: InputSpec, max_images: int) -> Decoded:
        """The image files in the form's ``file`` parts, in order, as the model's input batch.

        Raises:
            ClientError: 400 for a body that is not the multipart form its Content-Type declares, 422 for a form
                without ``file`` parts, 413 for more than ``max_images``, the image's own 4xx for one the model
                cannot take.
        """
        boundary = parse_options_header(content_type)[1].get("boundary", "")
        if not boundary:
            raise ClientError(
                400,
                "invalid_multipart",
                "the Content-Type is multipart/form-data without a boundary; let the client library write the "
                "header (curl -F file=@photo.jpg does)",
            )
        parts = _parts(body, boundary.encode("latin-1", "replace"))
        files = [data for name, data in parts if name in FILE_PARTS]
        if not files:
            names = sorted({name for name, _ in parts})
            raise ClientError(
                422,
                "missing_file",
                f"the form has no part named 'file' (parts received: {names or 'none'}); send each image as a file "
                "part named file: curl -F file=@photo.jpg",
            )
        top_k = [data for name, data in parts if name == TOP_K]
        if len(top_k) > 1:
            raise ClientError(422, "invalid_top_k", f"the form gives top_k {len(top_k)} times; give it once")
        k = top_k_from_text(top_k[0].decode("utf-8", "replace"), "the form field top_k") if top_k else None
        where = "the file part" if len(files) == 1 else "file part"
        batch, facts = images_to_batch(files, spec, max_images, where, indexed=len(files) > 1)
        return Decoded(batch, self, item_facts=facts, top_k=k)

    def encode(self, prediction: Prediction, decoded: Decoded, context: ReplyContext) -> bytes:
        return DATA.encode(prediction, decoded, context)


def _parts(body: bytes, boundary: bytes) -> list[tuple[str, bytes]]:
    """(name, bytes) of every part, in order.

    Raises:
        ClientError: 400 ``invalid_multipart`` for a body the parser cannot read to its end.
    """
    decoder = MultipartDecoder(boundary, max_parts=MAX_PARTS)
    parts: list[tuple[str, bytes]] = []
    pieces: list[bytes] = []
    name = ""
    try:
        decoder.receive_data(body)
        decoder.receive_data(None)
        while not isinstance(event := decoder.next_event(), Epilogue):
            if isinstance(event, NeedData):  # complete, yet the closing boundary never came
                raise ValueError("the body ends before the form's closing boundary")
            if isinstance(event, (Field, File)):
                name, pieces = event.name, []
            elif isinstance(event, Data):
                pieces.append(event.data)
                if not event.more_data:
                    parts.append((name, b"".join(pieces)))
    except ValueError as err:
        raise ClientError(
            400,
            "invalid_multipart",
            f"the body is not the multipart form its Content-Type declares ({err}); let the client library build "
            "it (curl -F file=@photo.jpg)",
        ) from None
    except Exception as err:  # werkzeug's RequestEntityTooLarge for more than MAX_PARTS parts
        if "Entity" in type(err).__name__:
            raise ClientError(
                413, "too_many_parts", f"the form has more than {MAX_PARTS} parts; send at most MAX_IMAGES files"
            ) from None
        raise
    return parts


MULTIPART_CODEC = MultipartCodec()
