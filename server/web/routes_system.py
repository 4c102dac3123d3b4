"""Unauthenticated endpoints for operators' tooling: health and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.responses import JSONResponse, Response

from server.web.deps import Db
from server.web.metrics import render_metrics

__all__ = ["router"]

router = APIRouter(tags=["system"])


@router.get("/healthz", summary="Liveness and database reachability")
async def healthz(db: Db) -> Response:
    """200 when the database answers, 503 otherwise (for load balancers and systemd)."""
    try:
        await db.fetch_one("SELECT 1 AS ok")
    except Exception as exc:
        return JSONResponse({"status": "error", "database": str(exc)}, status_code=503)
    return JSONResponse({"status": "ok", "database": db.dialect})


@router.get("/metrics", summary="Prometheus metrics")
async def metrics(db: Db) -> Response:
    """Events ingested and rejected, incidents open, notification failures, devices online."""
    return Response(await render_metrics(db), media_type=CONTENT_TYPE_LATEST)
