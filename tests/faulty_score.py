"""``score.py`` with a fault in the template's own decoding, as an entry script for a real server
(tests/test_faults.py): a request sent with ``Content-Type: application/x-fault`` makes ``serving.codecs.decode``
raise, as a bug there would. Every other request is served as ``score.py`` serves it."""

import score
from serving import codecs

FAULT = "application/x-fault"
_decode = codecs.decode


def _decode_or_fail(body, content_type, *args):
    if content_type == FAULT:
        raise RuntimeError("injected fault in decoding")
    return _decode(body, content_type, *args)


codecs.decode = _decode_or_fail
init = score.init
run = score.run
