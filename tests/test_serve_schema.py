"""The OpenAPI schema fuzzed by schemathesis against the running server: no 5xx, every
response (status code, content type, body) matches what the schema declares, and requests that
break the schema are refused. A bounded number of cases per operation (``max_examples``)."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from captcha_vqa.app import create_app
from captcha_vqa.config import ServeConfig
from captcha_vqa.models import Loaded

# The schema does not depend on the models, so it is read from an app without any; the cases
# go to the live server (tests/conftest.py), which has both.
schema = schemathesis.openapi.from_dict(create_app(ServeConfig(), Loaded()).openapi())


@schema.parametrize()
@settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_operation_conforms(case, live_server):
    # Every other check runs. "Schema-valid data is accepted" cannot hold here: the schema can
    # say "binary" or "base64 string" but not "a decodable image", so random bytes get the
    # correct 415 (which the status-code and response-schema checks do verify).
    case.call_and_validate(base_url=live_server, timeout=30, excluded_checks=[positive_data_acceptance])
