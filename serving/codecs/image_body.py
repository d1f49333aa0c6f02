"""A raw image body: ``Content-Type: image/jpeg`` (``image/png``, ``image/webp``, any ``image/*``) with the file's
bytes, one image per request (``curl --data-binary @photo.jpg -H 'Content-Type: image/jpeg'``); answered like
``{"data": rows}``. ``?top_k=k`` in the URL asks for its k most probable labels.

The declared type only routes the request: the decoders that may run are the model's allow-list, and the image's
own bytes say which one it is.
"""

from __future__ import annotations

from model_arch.spec import InputSpec
from serving.codecs.json_body import JSON
from serving.codecs.rows import DATA
from serving.codecs.types import Decoded, ReplyContext
from serving.images import images_to_batch
from serving.predictor import Prediction


class ImageBodyCodec:
    name = "image"
    media_type = JSON
    form = "image/jpeg, image/png, ...: one image file as the body"

    def decode(self, body: bytes, spec: InputSpec, max_images: int) -> Decoded:
        """The body as one image, the model's input batch of one row.

        Raises:
            ClientError: 415 when the model takes no images; the image's own 4xx for one it cannot take.
        """
        batch, facts = images_to_batch([body], spec, max_images, "the body", indexed=False)
        return Decoded(batch, self, item_facts=facts)

    def encode(self, prediction: Prediction, decoded: Decoded, context: ReplyContext) -> bytes:
        return DATA.encode(prediction, decoded, context)


IMAGE_BODY_CODEC = ImageBodyCodec()
