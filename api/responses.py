"""Encoded answers as HTTP responses: the bytes come from `api.encode`, the framework's Response from here."""

from typing import Any, Literal

import orjson
import pandas as pd
from fastapi import Response

from api.encode import MEDIA_TYPES, envelope_headers, table_bytes


def json_response(payload: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(payload), status_code, headers, media_type=MEDIA_TYPES["json"])


def table_response(rows: pd.DataFrame, form: Literal["arrow", "csv"], metadata: dict[str, Any]) -> Response:
    """Rows as an Arrow IPC stream or CSV, with the envelope's scalars in `X-Asof-*` headers."""
    return Response(
        table_bytes(rows, form, metadata), media_type=MEDIA_TYPES[form], headers=envelope_headers(metadata)
    )
