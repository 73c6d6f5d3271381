"""``POST /imports/leads``: a CSV or NDJSON file of leads, stored as an import job (202 and
its ID) that the runner works through in the background."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from resolvers.errors import AuthError, BadInput
from resolvers.imports import jobs
from resolvers.imports.rows import Refused, TooLarge
from schema.http.common import auth_refused, context_for, refused


async def import_leads(request: Request) -> Response:
    ctx = await context_for(request)
    try:
        job_id = await jobs.receive(
            ctx, request.stream(), request.headers.get("content-type"), request.query_params
        )
    except AuthError as exc:
        return auth_refused(exc)
    except BadInput as exc:
        return refused(400, exc.message, exc.code)
    except TooLarge as exc:
        return refused(413, exc.message, "PAYLOAD_TOO_LARGE")
    except Refused as exc:
        return refused(400, exc.message, "BAD_REQUEST")
    runner = getattr(request.app.state, "importer", None)
    if runner is not None:
        runner.wake()
    return JSONResponse({"id": job_id}, status_code=202)
