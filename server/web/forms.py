"""Parsing query strings and forms into pydantic models (empty fields mean "not given")."""

from __future__ import annotations

from typing import TypeVar

from fastapi import HTTPException, Request
from pydantic import BaseModel, ValidationError

__all__ = ["parse_query"]

M = TypeVar("M", bound=BaseModel)


def parse_query(request: Request, model: type[M]) -> M:
    """``model`` from the query string; an invalid value is a 400 naming the field."""
    data = {k: v for k, v in request.query_params.items() if v != ""}
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        fields = ", ".join(".".join(str(p) for p in e["loc"]) for e in exc.errors())
        raise HTTPException(400, f"invalid filter: {fields}") from None
