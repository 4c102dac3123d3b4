"""The grid report as text lines (for notifications) and as a PDF (reportlab).

Chinese needs no font file of ours: the PDF names Adobe's standard CID font
``STSong-Light`` (reportlab's ``UnicodeCIDFont``, encoding UniGB-UCS2-H), which
every PDF reader supplies; Latin text uses the same font so one run of mixed
text never switches fonts.
"""

from __future__ import annotations

import io
from functools import cache

from ground.i18n import duration_text, label, t
from server.domain.reports import GridReport

__all__ = ["duration", "render_report_pdf", "summary_lines", "title"]

FONT = "STSong-Light"


def duration(seconds: float | None, language: str) -> str:
    """A short human duration through the catalogue (``2 小时 5 分``, ``3 min 4 s``), or —."""
    return "—" if seconds is None else duration_text(seconds, language)


def share_text(share: float | None, language: str) -> str:
    """A coverage share as a percentage, or "no armed time"."""
    return t("report.coverage_none", language) if share is None else f"{share * 100:.1f}%"


def title(report: GridReport, language: str) -> str:
    """The report's title (also the notification's)."""
    period = (report.first_day.isoformat() if report.days == 1 else
              f"{report.first_day.isoformat()} – {report.last_day.isoformat()}")
    return t("report.title", language, kind=label("report.kind", report.kind.value, language),
             grid=report.grid, period=period)


def summary_lines(report: GridReport, language: str) -> list[str]:
    """The report's key figures, one line each (the notification body, the PDF's summary)."""
    kinds = "、" if language == "zh_CN" else ", "
    by_kind = kinds.join(f"{label('incident.kind', k, language)} {n}"
                         for k, n in sorted(report.incidents_by_kind.items()))
    return [
        t("report.line.incidents", language, n=len(report.incidents),
          open=report.open_incidents, kinds=by_kind or t("report.none", language)),
        t("report.line.response", language,
          d=duration(report.median_response_s, language)),
        t("report.line.followups", language, visited=report.visited,
          expected=report.expected_visits, records=report.followups),
        t("report.line.fevers", language, n=len(report.fevers), c=report.fever_c),
        t("report.line.checkins", language, asked=report.checkins_asked,
          present=report.checkins_present, missed=report.checkins_missed,
          leave=report.checkins_on_leave),
        t("report.line.coverage", language, share=share_text(report.coverage_share, language),
          armed=duration(report.coverage_armed_s, language),
          blind=duration(report.coverage_blind_s, language))
        if report.coverage_share is not None else t("report.line.coverage_none", language),
    ]


@cache
def _register_font() -> None:
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont

    pdfmetrics.registerFont(UnicodeCIDFont(FONT))


def render_report_pdf(report: GridReport, language: str, zone: str) -> bytes:
    """The report as an A4 PDF (blocking, CPU: run it off the event loop)."""
    from zoneinfo import ZoneInfo

    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    _register_font()
    tz = ZoneInfo(zone)
    body = ParagraphStyle("body", fontName=FONT, fontSize=10, leading=14, wordWrap="CJK")
    head = ParagraphStyle("head", parent=body, fontSize=13, leading=18, spaceBefore=8)
    big = ParagraphStyle("title", parent=body, fontSize=16, leading=22)
    cell = ParagraphStyle("cell", parent=body, fontSize=8.5, leading=11)

    def table(header: list[str], rows: list[list[str]], widths: list[float]) -> Table:
        data = [[Paragraph(h, cell) for h in header]]
        data += [[Paragraph(c, cell) for c in r] for r in rows]
        out = Table(data, colWidths=[w * mm for w in widths], repeatRows=1)
        out.setStyle(TableStyle([
            ("GRID", (0, 0), (-1, -1), 0.4, colors.grey),
            ("BACKGROUND", (0, 0), (-1, 0), colors.whitesmoke),
            ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ]))
        return out

    none = t("report.none", language)
    story: list[object] = [
        Paragraph(title(report, language), big),
        Paragraph(t("report.generated", language,
                    at=report.generated_at.astimezone(tz).strftime("%Y-%m-%d %H:%M")), body),
        Paragraph(t("report.section.summary", language), head),
    ]
    story += [Paragraph(line, body) for line in summary_lines(report, language)]
    story.append(Paragraph(t("report.section.incidents", language), head))
    if report.incidents:
        story.append(table(
            [t("report.col.opened", language), t("report.col.household", language),
             t("report.col.kind", language), t("report.col.state", language),
             t("report.col.response", language)],
            [[i.opened_at.astimezone(tz).strftime("%m-%d %H:%M"), i.household,
              label("incident.kind", i.kind, language), label("web.state", i.state, language),
              duration(i.response_s, language)] for i in report.incidents],
            [25, 50, 45, 25, 30]))
    else:
        story.append(Paragraph(none, body))
    story.append(Paragraph(t("report.section.fevers", language), head))
    if report.fevers:
        story.append(table(
            [t("report.col.day", language), t("report.col.household", language),
             t("report.col.member", language), t("report.col.temperature", language)],
            [[f.day, f.household, f.member if f.member != "household"
              else t("report.whole_household", language), f"{f.temperature_c:.1f} °C"]
             for f in report.fevers],
            [30, 60, 50, 30]))
    else:
        story.append(Paragraph(none, body))
    story.append(Paragraph(t("report.section.coverage", language), head))
    story.append(Paragraph(t("web.coverage.explain", language), cell))
    story.append(Spacer(1, 2 * mm))
    if report.coverage:
        story.append(table(
            [t("report.col.household", language), t("report.col.armed", language),
             t("report.col.share", language), t("report.col.blind", language),
             t("report.col.parts", language)],
            [[c.household, duration(c.armed_s, language), share_text(c.share, language),
              duration(c.blind_s, language),
              "、".join(label("coverage.part", p, language) for p in c.parts)
              if language == "zh_CN" else
              ", ".join(label("coverage.part", p, language) for p in c.parts)]
             for c in report.coverage],
            [50, 30, 25, 30, 40]))
    else:
        story.append(Paragraph(none, body))
    out = io.BytesIO()
    doc = SimpleDocTemplate(out, pagesize=A4, title=title(report, language),
                            leftMargin=15 * mm, rightMargin=15 * mm,
                            topMargin=15 * mm, bottomMargin=15 * mm)
    doc.build(story)
    return out.getvalue()
