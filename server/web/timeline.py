"""An incident's timeline: its events and its audit entries, in time order, in words.

The audit log keeps machine-readable details (``visitor -> breach``,
``confirmed_breach: note``); a person reading an incident should see
"Upgraded from visitor to breach", in their language. Each action we write
has a sentence in the catalogue (``timeline.*``); an action this module does
not know yet is shown with its generic label and raw detail rather than
hiding it.
"""

from __future__ import annotations

import re
from typing import Any

from ground.i18n import t
from server.web.render import label

__all__ = ["timeline"]

_NOTIFICATIONS = re.compile(r"(\d+) notifications")


def _kind(value: str, language: str) -> str:
    return label("incident.kind", value, language)


def _verdict(value: str, language: str) -> str:
    return label("incident.verdict", value, language)


def _describe(action: str, detail: str, language: str) -> tuple[str, str]:
    """(sentence, remaining detail for humans) of one audit entry."""
    head, _, rest = detail.partition(": ")
    if action == "incident.open":
        kind = detail.split(" ", 1)[0]
        return t("timeline.open", language, kind=_kind(kind, language)), ""
    if action == "incident.upgrade" and " -> " in detail:
        old, new = detail.split(" -> ", 1)
        return t("timeline.upgrade", language, old=_kind(old, language),
                 new=_kind(new, language)), ""
    if action == "incident.escalate":
        found = _NOTIFICATIONS.search(detail)
        return t("timeline.escalate", language, count=found.group(1) if found else "?"), ""
    if action == "incident.backup":
        found = _NOTIFICATIONS.search(detail)
        return t("timeline.backup", language, count=found.group(1) if found else "?"), ""
    if action == "incident.grouped":
        return t("timeline.grouped", language, group=detail.split(" ", 1)[0]), ""
    if action == "incident.silenced":
        return t("timeline.silenced", language, reason=rest or detail), ""
    if action == "incident.ack":
        key = "timeline.ack_link" if detail.startswith("one-tap link") else "timeline.ack"
        return t(key, language), ""
    if action == "incident.ack_link_refused":
        reason = detail.split(" ", 1)[0]
        return t("timeline.ack_link_refused", language,
                 reason=label("ack.reason", reason, language)), ""
    if action == "incident.resolve":
        return t("timeline.resolve", language,
                 outcome=label("incident.outcome", head, language)), rest
    if action == "incident.confirm":
        return _verdict("confirmed", language), ""
    if action in ("incident.withdraw", "incident.withdraw_noted"):
        key = "timeline.withdraw" if action == "incident.withdraw" else "timeline.withdraw_noted"
        return t(key, language, verdict=_verdict(head, language)), rest
    return label("web.action", action, language), detail


def _event_title(event: dict[str, Any], language: str) -> str:
    title = label("web.event", str(event["kind"]), language)
    if event.get("report") == "early":
        return t("timeline.early_exit", language)
    if event.get("report") == "final":
        return t("timeline.final", language, kind=title)
    return title


def timeline(events: list[dict[str, Any]], history: list[dict[str, Any]],
             language: str) -> list[dict[str, Any]]:
    """Events and audit entries merged by time (events first at the same instant)."""
    entries: list[tuple[str, int, int, dict[str, Any]]] = []
    for i, event in enumerate(events):
        sub = f"{event['device_id']} · seq {event['seq']}"
        if event.get("tamper"):
            sub += f" · {label('web.tamper', str(event['tamper']), language)}"
        entries.append((str(event["device_time"]), 0, i, {
            "at": event["device_time"], "type": "event",
            "title": _event_title(event, language), "sub": sub,
            "detail": event.get("detail") or "", "snapshot": event.get("snapshot")}))
    for i, entry in enumerate(history):
        sentence, rest = _describe(str(entry["action"]), str(entry.get("detail") or ""),
                                   language)
        actor = str(entry["actor"])
        entries.append((str(entry["at"]), 1, i, {
            "at": entry["at"], "type": "history", "title": sentence,
            "sub": t("timeline.system", language) if actor == "system" else actor,
            "detail": rest, "snapshot": None}))
    return [e for *_, e in sorted(entries, key=lambda x: x[:3])]
