"""The picture of an incident's crossing, as attached to its alert (behind log-in).

Channels that take no attachments get this link in the alert instead; it
shows the same crop (see :mod:`server.notify.evidence`) to whoever may see
the incident.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException
from starlette.responses import Response

from server.notify.evidence import crop_to_budget, incident_evidence
from server.web.deps import CASEWORK, Db, Settings, require
from server.web.queries import incident_detail
from server.web.users import User

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

Casework = Annotated[User, Depends(require(*CASEWORK))]


@router.get("/incidents/{incident_id}/evidence.jpg")
async def evidence_picture(db: Db, settings: Settings, user: Casework,
                           incident_id: int) -> Response:
    """The cropped snapshot of the crossing (404 when the incident has none)."""
    if await incident_detail(db, user, incident_id) is None:
        raise HTTPException(404)
    evidence, _waiting = await incident_evidence(db, incident_id)
    if evidence is None:
        raise HTTPException(404)
    picture = await asyncio.to_thread(crop_to_budget, evidence.jpeg, evidence.region,
                                      max_side=settings.notify.evidence_max_side,
                                      max_bytes=settings.notify.evidence_max_bytes)
    return Response(picture, media_type="image/jpeg",
                    headers={"Cache-Control": "private, max-age=300"})
