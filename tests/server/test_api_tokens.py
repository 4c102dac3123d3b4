"""API tokens (issue 19, item 6), on SQLite and PostgreSQL: hashed, scoped, revocable, limited."""

from __future__ import annotations

import pytest

from server.db.base import Database
from server.domain.api_tokens import (
    ApiTokenIn,
    Scope,
    TokenRefusedError,
    create_token,
    list_tokens,
    revoke_token,
    use_token,
)
from tests.server.helpers import rows, scalar


async def test_token_is_hashed_scoped_limited_and_revocable(db: Database) -> None:
    token_id, text = await create_token(db, ApiTokenIn(
        name="区疾控中心", scopes=[Scope.EXPORT, Scope.FOLLOWUPS]), actor="admin")
    assert text.startswith("dwt_")
    assert len(text) > 40
    stored = (await rows(db, "SELECT * FROM api_tokens"))[0]
    assert text not in {str(v) for v in stored.values()}  # only its hash and a short prefix
    assert text.startswith(stored["prefix"])
    used = await use_token(db, text, Scope.EXPORT, what="/api/share/day/2026-03-01",
                           per_minute=3)
    assert used.id == token_id
    with pytest.raises(TokenRefusedError) as scope:
        await use_token(db, text, Scope.INCIDENTS, what="x", per_minute=3)
    assert scope.value.status == 403
    for status_wanted in (None, None, 429, 429):
        if status_wanted is None:
            await use_token(db, text, Scope.FOLLOWUPS, what="x", per_minute=3)
        else:
            with pytest.raises(TokenRefusedError) as limited:
                await use_token(db, text, Scope.FOLLOWUPS, what="x", per_minute=3)
            assert limited.value.status == 429
            assert limited.value.retry_after_s is not None
    for bad in (None, "", "nonsense", "dwt_" + "x" * 43):
        with pytest.raises(TokenRefusedError) as unknown:
            await use_token(db, bad, Scope.EXPORT, what="x", per_minute=3)
        assert unknown.value.status == 401
    await revoke_token(db, token_id, actor="admin")
    with pytest.raises(TokenRefusedError) as revoked:
        await use_token(db, text, Scope.EXPORT, what="x", per_minute=1000)
    assert revoked.value.status == 401
    assert not (await list_tokens(db))[0].active
    audit = [r["action"] for r in await rows(
        db, "SELECT action FROM audit_log WHERE subject = ? ORDER BY id",
        (f"api_token:{token_id}",))]
    assert audit == ["api_token.create"] + ["api_token.use"] * 3 + ["api_token.revoke"]
    assert await scalar(db, "SELECT COUNT(*) FROM audit_log WHERE actor = 'token:区疾控中心'") == 3
