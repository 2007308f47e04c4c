"""The daily report without a timetable: a day's marks and statistics as an email a teacher
reads on a phone (with a timetable, ``classes`` writes one per class and the whole school's).

``collect`` gathers the facts from the store; ``build_message`` turns them into an
``EmailMessage``: a plain-text part, an HTML part with a chart and intruder thumbnails as
inline images, and the day's CSV files attached. Every name and other student-controlled text is
escaped in HTML and neutralised in CSV. Students are named as a person reads them: their display
name (``names``: folder name -> display name), else their folder's name; the attached CSV files
keep the original's folder names. A day with no marks is a report that says everyone was
absent, not an error. Students excused by a correction are listed as excused, marks that
arrived late (received by the server long after they were seen: a queued scan, or a capture
time set back) are listed as such, and the day's corrections (who changed what, and why) close
the day's section.

``assemble``, ``chart_png``, ``thumbnail``, ``correction_text`` and ``late_arrival`` are shared
with ``classes``.
"""

from __future__ import annotations

import html
import io
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from PIL import Image

from ..attendance import files as csvfiles
from ..attendance.punctuality import ARRIVED_LATE_AFTER, arrived_late
from ..config import Settings
from ..db.store import Store
from ..errors import AttendanceError
from ..models import STATUS_LATE, STATUS_PRESENT, Correction, Mark, StudentStats

log = logging.getLogger(__name__)

HISTORY_DAYS = 14
MAX_THUMBNAILS = 12
LATE_ARRIVALS = (
    f"received more than {int(ARRIVED_LATE_AFTER.total_seconds() // 60)} minutes after they "
    "were seen"
)


def as_stored(data: bytes) -> bytes:
    """A photo's bytes as they are (no encryption to undo)."""
    return data


@dataclass
class DayReport:
    day: date
    class_name: str
    enrolled: list[str]
    marks: list[Mark]
    stats: list[StudentStats]
    intruders: list[dict[str, Any]]
    history: list[tuple[date, int, int]] = field(default_factory=list)  # day, on time, late
    excused: list[tuple[str, str]] = field(default_factory=list)  # name, reason
    corrections: list[Correction] = field(default_factory=list)
    rows: list[Mark] | None = None  # the day file's rows (every status); None: the marks
    zone: ZoneInfo | None = None  # for the times of the corrections
    open_photo: Callable[[bytes], bytes] = as_stored  # intruder photos are sealed at rest
    names: Mapping[str, str] = field(default_factory=dict)  # folder name -> display name

    def shown(self, name: str) -> str:
        """The name a person reads: the student's display name, else ``name``."""
        return self.names.get(name) or name

    @property
    def present(self) -> list[Mark]:
        return [m for m in self.marks if m.status == STATUS_PRESENT]

    @property
    def late(self) -> list[Mark]:
        return [m for m in self.marks if m.status == STATUS_LATE]

    @property
    def absent(self) -> list[str]:
        seen = {m.name for m in self.marks} | {name for name, _reason in self.excused}
        return [name for name in self.enrolled if name not in seen]

    @property
    def day_rows(self) -> list[Mark]:
        return self.marks if self.rows is None else self.rows

    @property
    def late_arrivals(self) -> list[str]:
        """The day's marks that arrived late, as ``late_arrival`` writes them."""
        zone = self.zone or timezone.utc
        out = []
        for m in self.marks:
            if m.received_at is not None and arrived_late(m.seen_at, m.received_at, zone):
                received = m.received_at.replace(tzinfo=timezone.utc).astimezone(zone)
                seen = f"{m.seen_at:%H:%M:%S}"
                out.append(late_arrival(self.shown(m.name), seen, received, self.day))
        return out

    @property
    def subject(self) -> str:
        return (
            f"{self.class_name}: attendance {self.day.isoformat()} "
            f"({len(self.marks)}/{len(self.enrolled)} present, {len(self.late)} late)"
        )


def collect(
    store: Store,
    day: date,
    enrolled: list[str],
    class_name: str,
    marks: list[Mark],
    stats: list[StudentStats],
    excused: Sequence[tuple[str, str]] = (),
    corrections: Sequence[Correction] = (),
    zone: ZoneInfo | None = None,
    display_names: Mapping[str, str] | None = None,
) -> DayReport:
    """The report of ``day``: ``marks`` are the day file's rows (every status; Present and
    Late are the day's marks), ``excused`` the students excused by a correction, ``display_names``
    the students' display names (folder name -> display name)."""
    names = sorted(set(enrolled), key=lambda n: (n.casefold(), n))
    return DayReport(
        day=day,
        class_name=class_name,
        enrolled=names,
        marks=[m for m in marks if m.status in (STATUS_PRESENT, STATUS_LATE)],
        stats=stats,
        intruders=store.intruders_on(day),
        history=store.daily_counts(day - timedelta(days=HISTORY_DAYS - 1), day),
        excused=list(excused),
        corrections=list(corrections),
        rows=list(marks),
        zone=zone,
        open_photo=store.sealer.open if store.sealer else as_stored,
        names=dict(display_names or {}),
    )


def correction_text(
    fix: Correction, zone: ZoneInfo | None, scope: str = "", shown: Callable[[str], str] = str
) -> str:
    """``10:12  Ben Ito, 7b 08:30: Absent -> Excused (by office: doctor's note)``: when (local
    time), who (``shown``: the name a person reads), where (``scope`` "school": class and
    period, "class": the period, "": neither), the change, by whom and why. Plain text: escape
    it for HTML."""
    at = fix.at.replace(tzinfo=timezone.utc)
    when = at.astimezone(zone) if zone is not None else at
    place = {"school": f", {fix.class_name} {fix.period}", "class": f", {fix.period}"}
    old = fix.old_status or "not marked"
    why = f": {fix.reason}" if fix.reason else ""
    return (
        f"{when:%H:%M}  {shown(fix.name)}{place.get(scope, '')}: {old} -> {fix.new_status} "
        f"(by {fix.by}{why})"
    )


def excused_text(excused: Sequence[tuple[str, str]], shown: Callable[[str], str] = str) -> str:
    return ", ".join(
        f"{shown(name)} ({reason})" if reason else shown(name) for name, reason in excused
    )


def seen_text(mark: Mark) -> str:
    """``HH:MM:SS`` the student was seen; ``by hand`` for a status set by hand (never seen)."""
    return csvfiles.seen_time(mark) or "by hand"


def late_arrival(name: str, seen: str, received: datetime, day: date, place: str = "") -> str:
    """``ana_lima: seen 08:50, received 11:40`` (``place``: where, e.g. ``7b 08:30``; the
    received date too when it is not ``day``): a mark that arrived late. Plain text."""
    when = f"{received:%H:%M}" if received.date() == day else f"{received:%Y-%m-%d %H:%M}"
    where = f", {place}" if place else ""
    return f"{name}{where}: seen {seen[:5]}, received {when}"


# --- chart -------------------------------------------------------------------------------------


def chart_png(report: DayReport) -> bytes:
    """Bars of on-time and late students per day over the last two weeks, enrolled as a line."""
    days = [report.day - timedelta(days=i) for i in range(HISTORY_DAYS - 1, -1, -1)]
    counts = {d: (on_time, late) for d, on_time, late in report.history}
    bars = [
        ("on time", "#2e7d32", [counts.get(d, (0, 0))[0] for d in days]),
        ("late", "#f9a825", [counts.get(d, (0, 0))[1] for d in days]),
    ]
    line = (len(report.enrolled), f"enrolled ({len(report.enrolled)})") if report.enrolled else None
    return bar_chart(days, bars, "students", line)


def bar_chart(
    days: Sequence[date],
    bars: Sequence[tuple[str, str, Sequence[int]]],
    ylabel: str,
    line: tuple[int, str] | None = None,
) -> bytes:
    """A PNG of stacked ``bars`` (label, colour, one count per day), with an optional
    horizontal ``line`` (value, label), at phone width."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    labels = [f"{d.day} {d:%b}" for d in days]  # 7 Dec, as the dashboard's charts
    fig, ax = plt.subplots(figsize=(6.4, 3.4), dpi=110)
    bottom = [0] * len(days)
    for label, colour, values in bars:
        ax.bar(labels, values, bottom=bottom, color=colour, label=label)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    top = max([*bottom, line[0] if line else 0, 1])
    if line:
        ax.axhline(line[0], color="#555555", linestyle="--", linewidth=1, label=line[1])
    ax.set_ylim(0, top * 1.08)
    ax.set_ylabel(ylabel, fontsize=10)
    ax.set_title(f"Attendance, last {len(days)} days", fontsize=13)
    ax.tick_params(axis="x", labelrotation=60, labelsize=9)
    ax.tick_params(axis="y", labelsize=9)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(fontsize=9, loc="upper center", bbox_to_anchor=(0.5, -0.32), frameon=False, ncol=4)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def thumbnail(
    path: Path, size: int = 160, open_photo: Callable[[bytes], bytes] = as_stored
) -> bytes | None:
    try:
        with Image.open(io.BytesIO(open_photo(path.read_bytes()))) as opened:
            image = opened.convert("RGB")
        image.thumbnail((size, size))
        out = io.BytesIO()
        image.save(out, format="JPEG", quality=80)
        return out.getvalue()
    except (OSError, ValueError, AttendanceError):
        log.warning("intruder photo missing or unreadable: %s", path.name)
        return None


# --- text and HTML -----------------------------------------------------------------------------


def render_text(report: DayReport) -> str:
    lines = [
        f"{report.class_name}: attendance report for {report.day:%A %d %B %Y}",
        "",
        f"Enrolled {len(report.enrolled)}, present {len(report.marks)} "
        f"(on time {len(report.present)}, late {len(report.late)}), "
        f"absent {len(report.absent)}, intruder photos {len(report.intruders)}.",
        "",
    ]
    if report.marks:
        lines.append("Present today:")
        lines += [f"  {seen_text(m):8}  {m.status:7}  {report.shown(m.name)}" for m in report.marks]
    else:
        lines.append("Nobody was marked today: every enrolled student is absent.")
    lines.append("")
    if report.absent:
        lines.append("Absent: " + ", ".join(report.shown(n) for n in report.absent))
        lines.append("")
    if report.excused:
        lines.append("Excused: " + excused_text(report.excused, report.shown))
        lines.append("")
    if report.late_arrivals:
        lines.append(f"Arrived late ({LATE_ARRIVALS}):")
        lines += [f"  {text}" for text in report.late_arrivals]
        lines.append("")
    if report.corrections:
        lines.append("Corrections today:")
        lines += [
            f"  {correction_text(c, report.zone, shown=report.shown)}" for c in report.corrections
        ]
        lines.append("")
    if report.stats:
        lines.append("Statistics so far (attendance %, late %):")
        lines += [
            f"  {report.shown(s.name)}: {s.attendance_pct:.1f}% present, {s.late_pct:.1f}% late"
            for s in report.stats
        ]
        lines.append("")
    if report.intruders:
        lines.append(
            "Intruder photos: "
            + ", ".join(f"{i['seen_at']:%H:%M:%S} ({i['camera']})" for i in report.intruders)
        )
        lines.append("")
    lines.append("The day's attendance and the statistics are attached as CSV files.")
    return "\n".join(lines) + "\n"


CSS = (
    "body{margin:0;padding:0;background:#f4f5f7;font-family:-apple-system,Segoe UI,Roboto,"
    "Helvetica,Arial,sans-serif;color:#1f2933}"
    ".wrap{max-width:640px;margin:0 auto;padding:16px}"
    ".card{background:#fff;border-radius:10px;padding:16px;margin-bottom:14px}"
    "h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:0 0 10px}"
    ".muted{color:#6b7785;font-size:13px}"
    ".counts{display:flex;flex-wrap:wrap;gap:8px}"
    ".count{flex:1 1 90px;background:#f4f5f7;border-radius:8px;padding:8px;text-align:center}"
    ".count b{display:block;font-size:22px}"
    "table{width:100%;border-collapse:collapse;font-size:14px}"
    "th,td{text-align:left;padding:6px 4px;border-bottom:1px solid #e4e7eb}"
    ".late{color:#b26a00;font-weight:600}.present{color:#2e7d32;font-weight:600}"
    ".thumbs img{border-radius:6px;margin:0 6px 6px 0}"
    ".absent{color:#c62828;font-weight:600}.excused{color:#546e7a;font-weight:600}"
    ".pending{color:#6b7785}.fixes{margin:4px 0 0;padding-left:18px;font-size:13px}"
    "th small,td small{display:block;color:#6b7785;font-weight:400}"
    # A phone (360 px): tables of five or six columns fit without cutting the last one off.
    "@media (max-width:480px){.wrap{padding:8px}.card{padding:10px}"
    "table{font-size:12px}th,td{padding:5px 2px}}"
)


def chart_card(chart_cid: str | None) -> list[str]:
    """The HTML card of the 14-day chart (an inline image by content id)."""
    if not chart_cid:
        return []
    return [
        f"<div class='card'><img src='cid:{chart_cid}' alt='Attendance over the "
        "last 14 days' style='width:100%;max-width:608px;height:auto'></div>"
    ]


def intruders_card(intruders: list[dict[str, Any]], thumbs: list[tuple[str, str]]) -> list[str]:
    """The HTML card of the day's intruder photos (inline thumbnails by content id)."""
    if not intruders:
        return []
    e = html.escape
    parts = [f"<div class='card'><h2>Intruder photos ({len(intruders)})</h2><div class='thumbs'>"]
    for cid, caption in thumbs:
        parts.append(f"<img src='cid:{cid}' alt='{e(caption)}' title='{e(caption)}' width='120'>")
    times = ", ".join(f"{i['seen_at']:%H:%M:%S} ({i['camera']})" for i in intruders)
    parts.append(f"<div class='muted'>{e(times)}</div>")
    parts.append("</div></div>")
    return parts


def render_html(report: DayReport, chart_cid: str | None, thumb_cids: list[tuple[str, str]]) -> str:
    e = html.escape
    counts = [
        ("enrolled", len(report.enrolled)),
        ("present", len(report.marks)),
        ("late", len(report.late)),
        ("absent", len(report.absent)),
        ("intruders", len(report.intruders)),
    ]
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>{e(report.subject)}</title><style>{CSS}</style></head><body><div class='wrap'>",
        f"<div class='card'><h1>{e(report.class_name)}</h1>",
        f"<div class='muted'>Attendance report for {report.day:%A %d %B %Y}</div></div>",
        "<div class='card'><div class='counts'>",
        *[f"<div class='count'><b>{n}</b>{label}</div>" for label, n in counts],
        "</div></div>",
        "<div class='card'><h2>Today</h2>",
    ]
    if report.marks:
        parts.append("<table><tr><th>Name</th><th>First seen</th><th>Status</th></tr>")
        for mark in report.marks:
            css = "late" if mark.status == STATUS_LATE else "present"
            parts.append(
                f"<tr><td>{e(report.shown(mark.name))}</td><td>{seen_text(mark)}</td>"
                f"<td class='{css}'>{e(mark.status)}</td></tr>"
            )
        parts.append("</table>")
    else:
        parts.append("<p><b>Nobody was marked today</b>: every enrolled student is absent.</p>")
    if report.absent:
        absent = ", ".join(report.shown(n) for n in report.absent)
        parts.append(f"<p><b>Absent ({len(report.absent)}):</b> {e(absent)}</p>")
    if report.excused:
        parts.append(
            f"<p><b>Excused ({len(report.excused)}):</b> "
            f"{e(excused_text(report.excused, report.shown))}</p>"
        )
    if report.late_arrivals:
        parts.append(late_arrivals_html(report.late_arrivals))
    if report.corrections:
        parts.append(corrections_html(report.corrections, report.zone, shown=report.shown))
    parts.append("</div>")
    parts += chart_card(chart_cid)
    if report.stats:
        parts.append(
            "<div class='card'><h2>Statistics so far</h2><table><tr><th>Name</th>"
            "<th>Present</th><th>Late</th><th>Attendance</th><th>Late %</th></tr>"
        )
        for s in report.stats:
            parts.append(
                f"<tr><td>{e(report.shown(s.name))}</td><td>{s.days_present}/{s.total_days}</td>"
                f"<td>{s.days_late}</td><td>{s.attendance_pct:.1f}%</td>"
                f"<td>{s.late_pct:.1f}%</td></tr>"
            )
        parts.append("</table></div>")
    parts += intruders_card(report.intruders, thumb_cids)
    parts.append(
        "<div class='muted'>The day's attendance and the statistics are attached as "
        "CSV files. Sent by Smart Attendance.</div></div></body></html>"
    )
    return "\n".join(parts)


def late_arrivals_html(arrivals: Sequence[str]) -> str:
    """The paragraph of the marks that arrived late."""
    items = "; ".join(html.escape(text) for text in arrivals)
    return f"<p><b>Arrived late ({len(arrivals)}):</b> {items} <small>({LATE_ARRIVALS})</small></p>"


def corrections_html(
    corrections: Sequence[Correction],
    zone: ZoneInfo | None,
    scope: str = "",
    shown: Callable[[str], str] = str,
) -> str:
    items = "".join(
        f"<li>{html.escape(correction_text(c, zone, scope, shown))}</li>" for c in corrections
    )
    return f"<p><b>Corrections today ({len(corrections)}):</b></p><ul class='fixes'>{items}</ul>"


def build_message(report: DayReport, settings: Settings, sent_at: datetime) -> EmailMessage:
    """The complete email: text, HTML with inline chart and thumbnails, CSV attachments."""
    chart = chart_png(report)
    chart_cid = new_cid()
    thumbs = thumbnails(report.intruders, report.open_photo)
    return assemble(
        subject=report.subject,
        to=settings.recipients,
        settings=settings,
        sent_at=sent_at,
        text=render_text(report),
        html=render_html(report, chart_cid, [(cid, caption) for cid, caption, _ in thumbs]),
        chart=(chart_cid, chart),
        thumbs=thumbs,
        attachments=[
            (f"attendance_{report.day.isoformat()}.csv", csvfiles.day_csv(report.day_rows)),
            ("student_statistics.csv", csvfiles.statistics_csv(report.stats)),
        ],
    )


def new_cid() -> str:
    return make_msgid(domain="smart-attendance.local")[1:-1]


def thumbnails(
    intruders: Sequence[dict[str, Any]], open_photo: Callable[[bytes], bytes] = as_stored
) -> list[tuple[str, str, bytes]]:
    """(content id, caption, JPEG) of the first ``MAX_THUMBNAILS`` readable intruder photos."""
    thumbs: list[tuple[str, str, bytes]] = []
    for intruder in intruders[:MAX_THUMBNAILS]:
        if not intruder["path"]:
            continue  # an event without a photo (ATTENDANCE_INTRUDER_PHOTOS=off)
        data = thumbnail(Path(intruder["path"]), open_photo=open_photo)
        if data:
            caption = f"{intruder['seen_at']:%H:%M:%S} ({intruder['camera']})"
            thumbs.append((new_cid(), caption, data))
    return thumbs


def assemble(
    *,
    subject: str,
    to: Sequence[str],
    settings: Settings,
    sent_at: datetime,
    text: str,
    html: str,
    chart: tuple[str, bytes] | None,
    thumbs: Sequence[tuple[str, str, bytes]],
    attachments: Sequence[tuple[str, str]],
) -> EmailMessage:
    """An email of a text part, an HTML part with its inline chart (content id, PNG) and
    thumbnails, and CSV ``attachments`` (file name, text)."""
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = settings.sender_email or "smart-attendance@localhost"
    message["To"] = ", ".join(to) or "undisclosed-recipients:;"
    message["Date"] = format_datetime(sent_at.astimezone(settings.zone))
    message["Message-ID"] = make_msgid(domain="smart-attendance.local")
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    html_part = message.get_body(preferencelist=("html",))
    assert isinstance(html_part, EmailMessage)
    if chart is not None:
        html_part.add_related(
            chart[1],
            maintype="image",
            subtype="png",
            cid=f"<{chart[0]}>",
            filename="attendance-chart.png",
        )
    for cid, _caption, data in thumbs:
        html_part.add_related(data, maintype="image", subtype="jpeg", cid=f"<{cid}>")
    for filename, content in attachments:
        message.add_attachment(  # the charset said: names with accents read right
            content.encode("utf-8"),
            maintype="text",
            subtype="csv",
            filename=filename,
            params={"charset": "utf-8"},
        )
    return message


def inline_html(message: EmailMessage) -> str:
    """The message's HTML with its inline images as data: URLs (for a browser preview)."""
    import base64

    html_part = message.get_body(preferencelist=("html",))
    assert html_part is not None
    text = html_part.get_content()
    for part in message.walk():
        cid = part.get("Content-ID")
        if cid and part.get_content_maintype() == "image":
            data = base64.b64encode(part.get_content()).decode("ascii")
            text = text.replace(
                f"cid:{cid.strip('<>')}", f"data:{part.get_content_type()};base64,{data}"
            )
    return str(text)
