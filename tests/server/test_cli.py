"""The admin CLI on both databases: add/list/update, CSV import with bad rows, incidents."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from typer.testing import CliRunner

from doorwatch.cli import app
from server.db.base import Database
from server.db.connect import open_database

T = TypeVar("T")
RUNNER = CliRunner()
URL = "json://127.0.0.1:9/notify"


class Cli:
    """Runs ``doorwatch ...`` in-process against one database, like an operator would."""

    def __init__(self, database_url: str):
        self.env = {"DOORWATCH_SERVER__DATABASE_URL": database_url, "DOORWATCH_LANG": "en",
                    "DOORWATCH_CONFIG": ""}
        self.url = database_url

    def __call__(self, *args: str, ok: bool = True) -> str:
        result = RUNNER.invoke(app, list(args), env=self.env)
        output = result.stdout + (result.stderr if result.stderr_bytes is not None else "")
        if ok:
            assert result.exit_code == 0, output
        else:
            assert result.exit_code != 0, output
        return output

    def query(self, action: Callable[[Database], Awaitable[T]]) -> T:
        """Look into the database (from a sync test)."""
        async def main() -> T:
            db = await open_database(self.url)
            try:
                return await action(db)
            finally:
                await db.close()
        return asyncio.run(main())

    def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        """Rows of a query."""
        return self.query(lambda db: db.fetch_all(sql, params))

    def provisioned(self, *device_ids: str) -> None:
        """Register devices as ``device provision`` does (which also needs a broker dir)."""
        from server.admin import register_device

        async def register(db: Database) -> None:
            for device_id in device_ids:
                await register_device(db, device_id, household_id=None)
        self.query(register)


@pytest.fixture
def cli(database_url: str) -> Cli:
    """A CLI bound to a fresh database (SQLite and PostgreSQL)."""
    return Cli(database_url)


def test_grid_worker_household_leave_followup_round_trip(cli: Cli) -> None:
    assert "worker 1" in cli("worker", "add", "李主任", "--supervisor", "--language", "en",
                             "--url", URL)
    assert "grid 1" in cli("grid", "add", "东区一网格", "--supervisor", "1")
    cli("worker", "add", "王网格", "--url", URL, "--grid", "东区一网格", "--phone", "138")
    cli.provisioned("door-1", "door-2")
    cli("household", "add", "张三家", "幸福路 8 号", "--grid", "东区一网格", "--worker", "2",
        "--member", "张三", "--member", "李四", "--start", "2026-03-01 08:00",
        "--end", "2099-03-15 08:00", "--device", "door-1")
    listed = [json.loads(line) for line in cli("household", "list", "--json").splitlines()]
    assert [(h["name"], h["members"], h["devices"], h["armed"]) for h in listed] == [
        ("张三家", ["张三", "李四"], ["door-1"], True)]
    assert listed[0]["quarantine_start"].startswith("2026-03-01T00:00:00")  # 08:00 Shanghai
    cli("household", "update", "1", "--address", "幸福路 9 号")
    assert "幸福路 9 号" in cli("household", "list")
    cli("worker", "update", "2", "--language", "en", "--inactive")
    assert "王网格" not in cli("worker", "list")
    cli("leave", "add", "1", "--from", "2026-03-02 09:00", "--to", "2026-03-02 12:00",
        "--reason", "hospital")
    assert "hospital" in cli("leave", "list", "--household", "1")
    cli("leave", "update", "1", "--to", "2026-03-02 13:00")
    assert "leave 1" in cli("leave", "end", "1")
    assert "ended" in cli("leave", "list", "--household", "1")
    cli("followup", "add", "1", "--temp", "张三=36.6", "--temp", "李四=37.9",
        "--symptoms", "cough", "--day", "2026-03-02")
    out = cli("followup", "list", "--household", "1", "--json")
    assert json.loads(out)["temperatures"] == {"张三": 36.6, "李四": 37.9}
    cli("followup", "update", "1", "--note", "called doctor")
    assert "called doctor" in cli("followup", "list")
    cli("household", "replace-device", "door-1", "door-2", "--reason", "camera broken")
    assert "camera broken" in cli("household", "show", "1")
    cli("household", "end-quarantine", "1", "--reason", "tested negative twice")
    audit = cli.rows("SELECT action, actor FROM audit_log WHERE action = ?",
                     ("household.end_quarantine_early",))
    assert audit[0]["actor"].startswith("cli:")


def test_bad_input_is_one_clear_line_and_a_failure(cli: Cli) -> None:
    out = cli("household", "add", "x", "y", "--grid", "nowhere", ok=False)
    assert "grid nowhere not found" in out
    out = cli("worker", "add", "a", "--url", "nonsense-url", ok=False)
    assert "Apprise does not understand" in out
    out = cli("followup", "add", "1", "--temp", "张三=hot", ok=False)
    assert "NAME=36.6" in out
    out = cli("incidents", "ack", "42", ok=False)
    assert "incident 42 not found" in out


HOUSEHOLDS_CSV = """户主,地址,网格,网格员,成员,隔离开始,隔离结束,备注,设备
赵家,和平路 1 号,东区一网格,王网格,赵一、赵二,2026-03-01 08:00,2026-03-15 08:00,,door-11
钱家,,东区一网格,王网格,钱一,2026-03-01 08:00,2026-03-15 08:00,,
孙家,和平路 3 号,西区,王网格,孙一,2026-03-01 08:00,2026-03-15 08:00,,
李家,和平路 4 号,东区一网格,王网格,李一,2026-03-15 08:00,2026-03-01 08:00,,
周家,和平路 5 号,东区一网格,王网格,周一,下周一,2026-03-15 08:00,,
吴家,和平路 6 号,东区一网格,王网格,吴一,2026-03-01 08:00,2026-03-15 08:00,,Bad/Id
郑家,和平路 7 号,东区一网格,2,郑一,2026-03-01 08:00,2026-03-15 08:00,老人独居,
王家,和平路 8 号,东区一网格,王网格,王一,2026-03-01 08:00,2026-03-15 08:00,,door-12
"""


def test_household_csv_import_keeps_good_rows_and_reports_each_bad_one(
    cli: Cli, tmp_path: Path
) -> None:
    cli("grid", "add", "东区一网格")
    cli("worker", "add", "王网格", "--url", URL, "--grid", "东区一网格")
    cli("worker", "add", "王网格", "--url", URL)  # a namesake outside the grid
    cli.provisioned("door-11")  # door-12 never was
    path = tmp_path / "households.csv"
    path.write_bytes(HOUSEHOLDS_CSV.encode("gb18030"))  # as Excel saves it in China
    dry = cli("household", "import", str(path), "--dry-run", ok=False)
    assert "dry run" in dry
    assert cli.rows("SELECT id FROM households") == []
    out = cli("household", "import", str(path), ok=False)
    assert f"{path} line 3 [address]" in out
    assert f"{path} line 4 [grid]: grid '西区' does not exist" in out
    assert f"{path} line 5 [(row)]" in out or f"{path} line 5 [quarantine" in out
    assert f"{path} line 6 [quarantine_start]: not a date/time" in out
    assert f"{path} line 7 [device]: invalid device id" in out
    assert f"{path} line 9 [device]: device door-12 is not registered" in out
    assert "8 rows, 2 imported, 6 with errors" in out
    names = [r["name"] for r in cli.rows("SELECT name FROM households ORDER BY id")]
    assert names == ["赵家", "郑家"]
    assert cli.rows("SELECT device_id, household_id FROM devices") == [
        {"device_id": "door-11", "household_id": 1}]
    # Importing the same file again adds nothing twice.
    again = cli("household", "import", str(path), ok=False)
    assert "already exists" in again
    assert len(cli.rows("SELECT id FROM households")) == 2


def test_unknown_device_ids_are_refused_by_every_command(cli: Cli, tmp_path: Path) -> None:
    cli("household", "add", "张三家", "幸福路 8 号")
    cli.provisioned("door-1")
    cli("household", "assign-device", "1", "door-1")
    unknown = "door-9999 is not registered: it was never provisioned, or the id is mistyped"
    for args in (("household", "add", "李四家", "幸福路 9 号", "--device", "door-9999"),
                 ("household", "assign-device", "1", "door-9999"),
                 ("household", "replace-device", "door-1", "door-9999", "--reason", "broken"),
                 ("household", "replace-device", "door-9999", "door-1", "--reason", "broken"),
                 ("household", "unassign-device", "door-9999", "--reason", "gone")):
        out = cli(*args, ok=False)
        assert unknown in out, (args, out)
        assert "doorwatch device provision --id door-9999" in out
    # Nothing was written on the way: no second household, no device row, door-1 stays.
    assert [r["name"] for r in cli.rows("SELECT name FROM households")] == ["张三家"]
    assert cli.rows("SELECT device_id, household_id FROM devices") == [
        {"device_id": "door-1", "household_id": 1}]
    path = tmp_path / "households.csv"
    path.write_text("name,address,device\n王家,和平路 8 号,door-9999\n", encoding="utf-8")
    assert unknown in cli("household", "import", str(path), ok=False)
    cli.env["DOORWATCH_LANG"] = "zh_CN"
    out = cli("household", "unassign-device", "door-9999", "--reason", "gone", ok=False)
    assert "设备 door-9999 未登记：从未发放，或编号有误" in out
    assert "设备 door-9999 未登记" in cli("household", "import", str(path), ok=False)


def test_worker_csv_import(cli: Cli, tmp_path: Path) -> None:
    cli("grid", "add", "g1")
    path = tmp_path / "workers.csv"
    path.write_text("name,phone,language,role,apprise_urls,grid\n"
                    f"王网格,138,zh_CN,网格员,{URL},g1\n"
                    f"Li Supervisor,139,en,supervisor,{URL} {URL}2,\n"
                    "Nobody,140,en,boss,,\n"
                    "No Url,141,en,worker,notaurl,g1\n", encoding="utf-8-sig")
    out = cli("worker", "import", str(path), ok=False)
    assert "line 4 [role]" in out
    assert "line 5 [apprise_urls]" in out
    workers = cli("worker", "list", "--json").splitlines()
    found = {json.loads(w)["name"]: json.loads(w) for w in workers}
    assert set(found) == {"王网格", "Li Supervisor"}
    assert found["Li Supervisor"]["role"] == "supervisor"
    assert len(found["Li Supervisor"]["apprise_urls"]) == 2


def test_incidents_list_ack_resolve_export(cli: Cli, tmp_path: Path) -> None:
    cli("worker", "add", "王网格", "--url", URL)
    cli.provisioned("door-1")
    cli("household", "add", "张三家", "幸福路 8 号", "--worker", "1", "--device", "door-1")

    async def breach(db: Database) -> None:
        from broker.messages import EventKind
        from ground.timeutil import utcnow
        from tests.server.helpers import EventFeeder, settings_for

        await EventFeeder(db, settings_for(cli.url)).send("door-1", EventKind.EXIT, utcnow())

    cli.query(breach)
    assert "breach" in cli("incidents", "list", "--state", "open")
    cli("incidents", "ack", "1", "--actor", "王网格")
    assert "not_open" in cli("incidents", "ack", "1", ok=False)
    assert "unknown outcome" in cli("incidents", "resolve", "1", "--outcome", "meh",
                                    "--note", "x", ok=False)
    cli("incidents", "resolve", "1", "--outcome", "false_alarm", "--note", "wind")
    shown = cli("incidents", "show", "1")
    assert "incident.ack" in shown
    assert "incident.resolve" in shown
    target = tmp_path / "incidents.csv"
    assert "1 incidents" in cli("incidents", "export", str(target), "--state", "resolved")
    table = list(csv.DictReader(io.StringIO(target.read_text(encoding="utf-8-sig"))))
    assert [(r["household"], r["outcome"], r["acknowledged_by"]) for r in table] == [
        ("张三家", "false_alarm", "王网格")]
    assert cli("incidents", "list", "--state", "open").splitlines()[1:] == []


def test_purge_command(cli: Cli) -> None:
    cli("household", "add", "旧家", "老街 1 号", "--start", "2020-01-01 08:00",
        "--end", "2020-01-15 08:00")
    out = cli("household", "purge", "--dry-run")
    assert "1 households" in out
    assert "household:1" in out
    assert "老街 1 号" in cli("household", "list")
    cli("household", "purge", "--actor", "ops")
    assert "老街 1 号" not in cli("household", "list", "--include-purged")
    assert cli.rows("SELECT actor FROM audit_log WHERE action = 'retention.purge'") == [
        {"actor": "ops"}]
