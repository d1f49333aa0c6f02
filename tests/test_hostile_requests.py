"""Every malformed and hostile request of ``tests/bad_requests.py`` against one real server, read back from its log:
each gets its 4xx and exactly one ``score`` line with that status and code, none writes a traceback, and the
server keeps answering. (``tests/test_server.py`` checks each answer's message, one request at a time.)"""

from __future__ import annotations

import pytest

from harness.client import request
from harness.server import InferenceServer
from tests.bad_requests import cases
from tests.helpers import SAMPLE_LABELS, SAMPLE_REQUEST
from tests.test_server import score_records

pytestmark = pytest.mark.server
SERVED = [case for case in cases() if case[4] != "batch_too_large"]  # the server's limit is 1024 rows, not 4


def test_every_hostile_request_gets_one_score_line_and_no_traceback(served: InferenceServer) -> None:
    log_before = len(served.log())

    statuses = {}
    for name, raw, content_type, _, _, _ in SERVED:
        reply = request(
            served.url + "/score", raw, method="POST", content_type=content_type, headers={"x-request-id": name}
        )
        statuses[name] = (reply.status, reply.json()["code"])
    good = request(served.url + "/score", SAMPLE_REQUEST.read_bytes(), method="POST")
    log = served.log()[log_before:]

    assert statuses == {name: (status, code) for name, _, _, status, code, _ in SERVED}
    lines = [record for record in score_records(log) if record["request_id"] in statuses]
    assert sorted(record["request_id"] for record in lines) == sorted(statuses)  # one line each
    assert all((record["status"], record["code"]) == statuses[record["request_id"]] for record in lines)
    assert "Traceback" not in log and " E [" not in log  # no traceback, nothing logged as an error
    assert (good.status, good.json()["predictions"]) == (200, SAMPLE_LABELS)
