"""Parsing query strings and forms into pydantic models (empty fields mean "not given")."""

from __future__ import annotations

from typing import TypeVar

from fastapi import HTTPException, Request
from pydantic import BaseModel, ValidationError

__all__ = ["MAX_ID", "parse_id", "parse_query"]

# Ids are 64-bit integers in both databases; a larger number names nothing.
MAX_ID = 2**63 - 1

M = TypeVar("M", bound=BaseModel)


def parse_query(request: Request, model: type[M]) -> M:
    """``model`` from the query string; an invalid value is a 400 naming the field."""
    data = {k: v for k, v in request.query_params.items() if v != ""}
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        fields = ", ".join(".".join(str(p) for p in e["loc"]) for e in exc.errors())
        raise HTTPException(400, f"invalid filter: {fields}") from None


def parse_id(value: str, field: str, *, maximum: int = MAX_ID) -> int:
    """A non-negative integer from a query, header or form field; anything else is a 400.

    Only ASCII digits count: ``str.isdigit`` also accepts "²" and other digits
    that ``int`` then refuses, and ``int`` refuses more than 4,300 digits, and
    a number past 64 bits cannot be bound to a query. Each of those was a 500.
    """
    text = value.strip()
    if not text or len(text) > len(str(maximum)) or not (text.isascii() and text.isdigit()):
        raise HTTPException(400, f"{field}: not a whole number")
    number = int(text)
    if number > maximum:
        raise HTTPException(400, f"{field}: too large")
    return number
