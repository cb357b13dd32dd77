"""Schemathesis over the OpenAPI spec against a live server holding a small published run: whatever the
requests (valid ones and ones that break the schema), the server never answers with a 5xx. Bounded to a few
examples per operation and mode so it stays fast."""

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from service.backfill import HistoricalFeatureBackfill
from service.sample import SyntheticUniverse
from tests.support.server import running_server
from vocabulary.spec import BackfillSpec

EXAMPLES_PER_OPERATION = 10


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("data")
    files = SyntheticUniverse(n_symbols=3, n_bars=60, seed=11).write(data_dir)  # `lake`, as in the examples
    HistoricalFeatureBackfill(data_dir, BackfillSpec(lake=files.lake, interval="1d")).run()
    with running_server(data_dir) as url:
        yield schemathesis.openapi.from_url(f"{url}/openapi.json")


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_request_gets_a_server_error(api_schema, mode):
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) == 16  # every route of the API table in DESIGN.md, compaction, and /metrics
    if mode is GenerationMode.NEGATIVE:  # a schema can be broken only where it constrains query or body
        operations = [operation for operation in operations if len(operation.query) or len(operation.body)]

    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def call(case):
            case.call_and_validate(checks=[not_a_server_error])

        call()
