"""HTTP API of the ingest service: ERP events in, CloudEvents out (after acks=all)."""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, FastAPI, Request, Response, Security
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import TypeAdapter
from starlette.exceptions import HTTPException as StarletteHTTPException

from ingest import examples as ex
from ingest.batch import parse_batch, parse_csv
from ingest.config import IngestSettings
from ingest.limits import BodyLimits, media_type
from ingest.pipeline import Item
from ingest.schemas import (
    Accepted,
    BatchItem,
    BatchResult,
    ChargeIn,
    ComplaintIn,
    ComplaintResolveIn,
    CreditIn,
    LeaseContacts,
    LeaseEndIn,
    LeaseIn,
    PaymentIn,
    ReversalIn,
    StrictIn,
    WarningIn,
    WatermarkIn,
)
from ingest.service import Ingestor, batch_result
from shared.clock import Clock
from shared.http import (
    Conflict,
    ErrorBody,
    Forbidden,
    NotFound,
    Unauthorized,
    Unprocessable,
    create_service_app,
    document_errors,
    health_router,
    install_error_handlers,
)
from shared.runtime import Runtime, service_runtime

API_KEY = APIKeyHeader(
    name="X-API-Key",
    auto_error=False,
    scheme_name="ErpApiKey",
    description="The ERP client's key (`bokvar clients create`).",
)
BEARER = HTTPBearer(
    auto_error=False,
    scheme_name="ServiceToken",
    description="The service token (BOKVAR_SERVICE_TOKEN), internal APIs.",
)

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text}
    for code, text in {
        400: "The body cannot be parsed.",
        401: "Missing or wrong API key.",
        403: "The lease belongs to another organisation.",
        413: "Body over the size limit.",
        415: "Wrong Content-Type.",
        409: "The event id was already accepted with a different body (body hashes in the "
        "detail); a repeat of the same body is answered `duplicate`.",
        422: "Invalid event: the field and the reason.",
        503: "The broker or the database is unreachable (or concurrent requests kept storing "
        "the same event ids); retry after `Retry-After` seconds.",
    }.items()
}
ERRORS[503]["headers"] = {
    "Retry-After": {
        "description": "Seconds to wait before retrying.",
        "schema": {"type": "integer"},
    }
}
PATH_ERRORS = {**ERRORS, 404: {"model": ErrorBody, "description": "Unknown lease or complaint."}}
BATCH_ERRORS = {code: spec for code, spec in ERRORS.items() if code != 409}


async def _http_error(_request: Request, exc: Exception) -> Response:
    """Render framework errors (e.g. an unparsable body) in the one error format."""
    assert isinstance(exc, StarletteHTTPException)
    name = {400: "BadRequest", 404: "NotFound", 405: "MethodNotAllowed"}.get(
        exc.status_code, "Error"
    )
    return JSONResponse(
        {"error": name, "detail": exc.detail}, status_code=exc.status_code, headers=exc.headers
    )


def _json(body: bytes) -> Response:
    return Response(body, status_code=202, media_type="application/json")


def _ingestor(request: Request) -> Ingestor:
    ingestor: Ingestor = request.app.state.ingestor
    return ingestor


async def _org(request: Request, key: Annotated[str | None, Security(API_KEY)] = None) -> str:
    return await _ingestor(request).authenticate(key)


Ing = Annotated[Ingestor, Depends(_ingestor)]
Org = Annotated[str, Depends(_org)]


def _location(field: str, path_id: str | None) -> str:
    """Return where a rejected field was: the path (lease or complaint id) or the body."""
    if path_id is not None and field in ("lease_id", "complaint_id"):
        return f"path.{field}"
    return f"body.{field}"


async def _single(
    ing: Ingestor, org: str, kind: str, body: StrictIn, path_id: str | None = None
) -> Accepted:
    """Process one event; map a rejection to 403, 404 or 422 with field and reason."""
    event_id: str = getattr(body, "event_id")  # noqa: B009
    outcome = await ing.ingest(org, [Item(0, kind, event_id, body, path_id=path_id)])
    status = outcome.statuses[0]
    if status == "rejected":
        detail = [
            {"field": _location(e.field, path_id), "reason": e.reason} for e in outcome.errors[0]
        ]
        error = {403: Forbidden, 404: NotFound, 409: Conflict}.get(
            outcome.http_status[0], Unprocessable
        )
        raise error(detail[0]["reason"], detail=detail)
    return Accepted(event_id=event_id, id=f"{org}:{event_id}", status=status)


def _events_router() -> APIRouter:
    r = APIRouter(prefix="/v1", tags=["events"])

    @r.post("/leases", status_code=202, responses=ERRORS)
    async def register_lease(
        body: Annotated[LeaseIn, Body(openapi_examples=ex.example(ex.LEASE, "A lease"))],
        org: Org,
        ing: Ing,
    ) -> Accepted:
        """Register a lease, or update it (a full snapshot): tenants' contacts go to the vault."""
        return await _single(ing, org, "lease", body)

    @r.post("/leases/{lease_id}/end", status_code=202, responses=PATH_ERRORS)
    async def end_lease(
        lease_id: str,
        body: Annotated[LeaseEndIn, Body(openapi_examples=ex.example(ex.LEASE_END, "Move-out"))],
        org: Org,
        ing: Ing,
    ) -> Accepted:
        """End a lease."""
        return await _single(ing, org, "lease_end", body, path_id=lease_id)

    @r.post("/ledger/charges", status_code=202, responses=ERRORS)
    async def charge(
        body: Annotated[ChargeIn, Body(openapi_examples=ex.example(ex.CHARGE, "March rent"))],
        org: Org,
        ing: Ing,
    ) -> Accepted:
        """Record rent charged; without a due date it follows the lease or JB 12:20."""
        return await _single(ing, org, "charge", body)

    @r.post("/ledger/payments", status_code=202, responses=ERRORS)
    async def payment(
        body: Annotated[PaymentIn, Body(openapi_examples=ex.example(ex.PAYMENT, "Paid by OCR"))],
        org: Org,
        ing: Ing,
    ) -> Accepted:
        """Record a payment; the reference is the lease id or an invoice's OCR."""
        return await _single(ing, org, "payment", body)

    @r.post("/ledger/reversals", status_code=202, responses=ERRORS)
    async def reversal(
        body: Annotated[ReversalIn, Body(openapi_examples=ex.example(ex.REVERSAL, "Autogiro"))],
        org: Org,
        ing: Ing,
    ) -> Accepted:
        """Record a reversed payment (e.g. a rejected direct debit)."""
        return await _single(ing, org, "reversal", body)

    @r.post("/ledger/credits", status_code=202, responses=ERRORS)
    async def credit(
        body: Annotated[CreditIn, Body(openapi_examples=ex.example(ex.CREDIT, "Rent reduction"))],
        org: Org,
        ing: Ing,
    ) -> Accepted:
        """Record a credit issued on the lease."""
        return await _single(ing, org, "credit", body)

    @r.post("/ledger/watermark", status_code=202, responses=ERRORS)
    async def watermark(
        body: Annotated[
            WatermarkIn, Body(openapi_examples=ex.example(ex.WATERMARK, "Payments through 4 Jan"))
        ],
        org: Org,
        ing: Ing,
    ) -> Accepted:
        """Say that every payment booked on or before a day has been sent (org-wide).

        Send it after the day's payments were accepted. Late-rent stages wait for it (see
        docs/ingest.md); an older watermark than the latest one changes nothing.
        """
        return await _single(ing, org, "watermark", body)

    @r.post("/complaints", status_code=202, responses=ERRORS)
    async def complaint(
        body: Annotated[ComplaintIn, Body(openapi_examples=ex.example(ex.COMPLAINT, "Noise"))],
        org: Org,
        ing: Ing,
    ) -> Accepted:
        """Record a complaint; its description stays in ingest."""
        return await _single(ing, org, "complaint", body)

    @r.post("/complaints/{complaint_id}/resolve", status_code=202, responses=PATH_ERRORS)
    async def resolve_complaint(
        complaint_id: str,
        body: Annotated[
            ComplaintResolveIn, Body(openapi_examples=ex.example(ex.COMPLAINT_RESOLVE, "Closed"))
        ],
        org: Org,
        ing: Ing,
    ) -> Accepted:
        """Close a complaint."""
        return await _single(ing, org, "complaint_resolved", body, path_id=complaint_id)

    @r.post("/warnings", status_code=202, responses=ERRORS)
    async def warning(
        body: Annotated[WarningIn, Body(openapi_examples=ex.example(ex.WARNING, "Tillsägelse"))],
        org: Org,
        ing: Ing,
    ) -> Accepted:
        """Record a warning (tillsägelse) given to the tenant."""
        return await _single(ing, org, "warning", body)

    @r.post(
        "/events/batch",
        status_code=202,
        response_model=BatchResult,
        responses=BATCH_ERRORS,
        openapi_extra=_BATCH_BODY,
    )
    async def batch(request: Request, org: Org, ing: Ing) -> Response:
        """Ingest up to 10,000 events (JSON array or NDJSON), answered item by item."""
        settings: IngestSettings = request.app.state.settings
        items = parse_batch(
            await request.body(),
            media_type(request.headers.get("content-type", "")),
            max_events=settings.ingest_max_batch_events,
        )
        return _json(batch_result(items, await ing.ingest(org, items)))

    @r.post(
        "/ledger/import",
        status_code=202,
        response_model=BatchResult,
        responses=BATCH_ERRORS,
        openapi_extra=_CSV_BODY,
    )
    async def ledger_import(request: Request, org: Org, ing: Ing) -> Response:
        """Import ledger rows from CSV (see docs/ingest.md for the columns), row by row."""
        settings: IngestSettings = request.app.state.settings
        items = parse_csv(await request.body(), max_events=settings.ingest_max_batch_events)
        return _json(batch_result(items, await ing.ingest(org, items)))

    return r


_BATCH_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"type": "array"},
                "examples": ex.example(ex.BATCH, "Mixed events"),
            },
            "application/x-ndjson": {
                "schema": {"type": "string"},
                "examples": ex.example(ex.NDJSON, "One event per line"),
            },
        },
    }
}
_CSV_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "text/csv": {"schema": {"type": "string"}, "examples": ex.example(ex.CSV, "Ledger")}
        },
    }
}


def _internal_router() -> APIRouter:
    r = APIRouter(prefix="/internal/v1", tags=["internal"])

    @r.get(
        "/leases/{lease_id}/contacts",
        responses={
            401: {"model": ErrorBody, "description": "Missing or wrong service token."},
            404: {"model": ErrorBody, "description": "Unknown lease."},
        },
    )
    async def lease_contacts(
        lease_id: str,
        request: Request,
        ing: Ing,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)] = None,
    ) -> LeaseContacts:
        """Return a lease's tenant contacts (the notifier's lookup at send time)."""
        settings: IngestSettings = request.app.state.settings
        expected = settings.service_token.get_secret_value()
        if credentials is None or not hmac.compare_digest(credentials.credentials, expected):
            raise Unauthorized("missing or wrong service token")
        return await ing.contacts(lease_id)

    return r


def _install_openapi(app: FastAPI) -> None:
    """Describe the batch items in the OpenAPI document (the route reads the raw body)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
            items = TypeAdapter(list[BatchItem]).json_schema(
                ref_template="#/components/schemas/{model}"
            )
            schema.setdefault("components", {}).setdefault("schemas", {}).update(
                items.pop("$defs", {})
            )
            body = schema["paths"]["/v1/events/batch"]["post"]["requestBody"]["content"]
            body["application/json"]["schema"] = items
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(settings: IngestSettings, *, clock: Clock | None = None) -> FastAPI:
    """Build the ingest app; its lifespan owns the database, producer and the pipeline."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with service_runtime(settings, "ingest", clock=clock) as rt:
            app.state.rt = rt
            app.state.ingestor = ingestor = Ingestor(rt, settings)
            rt.spawn("seen-purge", ingestor.purge_loop)
            yield

    app = create_service_app("ingest", title="Bokvar ingest", lifespan=lifespan)
    app.state.settings = settings
    # bodies are checked field by field by the input models (a batch answers item by item)
    install_error_handlers(
        app, retry_after_seconds=settings.ingest_retry_after_seconds, check_json_bodies=False
    )
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_middleware(
        BodyLimits,
        max_body=settings.ingest_max_body_bytes,
        max_single_body=settings.ingest_max_single_body_bytes,
    )

    def checks(request: Request) -> dict[str, object]:
        rt: Runtime = request.app.state.rt

        async def broker() -> bool:
            return rt.producer_ready and await rt.producer.reachable()

        async def database() -> bool:
            await rt.database.ping()
            return True

        return {"database": database, "broker": broker}

    app.include_router(health_router(checks))  # type: ignore[arg-type]
    app.include_router(_events_router())
    app.include_router(_internal_router())
    _install_openapi(app)
    document_errors(app)
    return app
