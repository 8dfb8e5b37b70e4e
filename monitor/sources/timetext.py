"""Times and dates as live blogs write them in text: `17:34`, `11.04 Uhr:`, `5.34pm`,
`21:06 (IST)`, `2 March 2025 17:34`, `March 2, 2025, 5:34 PM`, `Donnerstag, 18. 7.`,
`18.07.2024 um 17.34 Uhr`, `18 juillet à 17h34`, `2024-07-18 17:34`, and relative ones
(`5 minutes ago`, `vor 5 Minuten`, `il y a 2 h`) which are recognised but never resolved.

Month and weekday names are known in English, German, French, Italian, Spanish, Portuguese
and Dutch. Numeric dates are day first (`18.7.`, `18/07/2024`) except ISO ones. Every pattern
is matched only against the first `HEAD` characters of a text, so the cost per text is bounded
whatever the page holds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, tzinfo

HEAD = 120

_MONTH_NAMES = {
    1: "january jan januar janv janvier gennaio gen enero ene janeiro januari jänner",
    2: "february feb februar févr fevrier février febbraio febrero fevereiro fev februari",
    3: "march mar märz maerz mars marzo março marco maart mrt",
    4: "april apr avril avr aprile abril abr",
    5: "may mai maggio mag mayo maio mei",
    6: "june jun juni juin giugno giu junio junho",
    7: "july jul juli juillet juil luglio lug julio julho",
    8: "august aug août aout agosto ago augustus",
    9: "september sep sept septembre settembre set septiembre setembro",
    10: "october oct oktober octobre ottobre ott octubre outubro out okt",
    11: "november nov novembre novembre noviembre novembro",
    12: "december dec dezember déc decembre décembre dicembre dic diciembre dezembro dez",
}
MONTHS = {name: number for number, names in _MONTH_NAMES.items() for name in names.split()}
_WEEKDAY_WORDS = (
    "monday tuesday wednesday thursday friday saturday sunday mon tue tues wed thu thurs fri "
    "sat sun montag dienstag mittwoch donnerstag freitag samstag sonntag sonnabend mo di mi "
    "do fr sa so lundi mardi mercredi jeudi vendredi samedi dimanche lunedì martedì mercoledì "
    "giovedì venerdì sabato domenica lunedi martedi mercoledi giovedi venerdi lunes martes "
    "miércoles jueves viernes sábado domingo miercoles sabado segunda terça quarta quinta "
    "sexta maandag dinsdag woensdag donderdag vrijdag zaterdag zondag today yesterday heute "
    "gestern aujourd'hui hier oggi ieri hoy ayer hoje ontem vandaag gisteren")
_WEEKDAYS = frozenset(_WEEKDAY_WORDS.split())
_MONTH = r"(?P<{}>[^\W\d_]{{3,10}})\.?"
_SEP = r"[\s,|·•–—-]*"
_WEEKDAY = re.compile(r"(?P<w>[^\W\d_]{2,11})\.?,?\s+")
_DATE_FORMS = (
    re.compile(r"(?P<y>\d{4})-(?P<m>\d{2})-(?P<d>\d{2})(?![\d:])"),
    re.compile(r"(?P<d>\d{1,2})\s?[./]\s?(?P<m>\d{1,2})\s?[./](?:\s?(?P<y>\d{4}|\d{2})(?!\d))?"),
    re.compile(r"(?P<d>\d{1,2})(?:st|nd|rd|th|er|º|°)?\.?\s(?:de\s)?" + _MONTH.format("mn")
               + r"(?:\s(?:de\s)?(?P<y>\d{4}))?"),
    re.compile(_MONTH.format("mn") + r"\s(?P<d>\d{1,2})(?:st|nd|rd|th)?(?![\d:.])"
               + r"(?:,?\s(?P<y>\d{4}))?"),
)
_AT = re.compile(r"(?:at|um|à|a|alle|ore|a\slas|às|om|kl\.?)\s+", re.IGNORECASE)
_CLOCK = re.compile(
    r"(?P<h>[01]?\d|2[0-3])\s?(?P<sep>[:.h])\s?(?P<min>[0-5]\d)(?![\d,])"
    r"(?:\s?(?P<ampm>[ap])\.?\s?m\b\.?)?"
    r"(?P<suffix>\s?(?:uhr|hrs|h\b|heures|horas|ore|uur|\((?:[a-z]{2,5})\)|"
    r"(?:ist|gmt|bst|cet|cest|utc|est|edt|cst|cdt|pst|pdt|et|pt|aest|aedt|ict|jst|msk)\b))?",
    re.IGNORECASE)
_RELATIVE = re.compile(
    r"(?:just now|gerade eben|à l'instant|adesso|ahora mismo|agora mesmo|zojuist|"
    r"(?:vor|il y a|hace|há|fa)\s\d{1,3}\s?[^\W\d_]{1,9}|"
    r"\d{1,3}\s?(?:s|sec|secs|seconds?|m|mins?|minutes?|h|hrs?|hours?|d|days?|"
    r"minuti|ore|giorni|minutos|horas|días|dias|minuten|uur|dagen)\s(?:ago|fa|geleden))",
    re.IGNORECASE)
_TAIL_SEP = re.compile(r"[\s:|·•–—,-]*")
#: What may follow a clock written with `.` (`2.59 Uhr`, `11.04:`), so that decimal
#: figures (`2.50 euros`) are not read as times.
_AFTER_DOT_CLOCK = re.compile(r"\s*(?:$|[:|·•–—-]|\()")


@dataclass(frozen=True)
class TextTime:
    """A time written at the start of a text: its date (year may be None), its clock, and
    where the expression ends (`end`), so the rest of the text is the title."""

    day: tuple[int | None, int, int] | None = None  # (year, month, day)
    clock: tuple[int, int] | None = None
    relative: bool = False
    end: int = 0

    def resolve(self, context: PageClock) -> datetime | None:
        """The moment meant, using the page's date and offset where the text omits them."""
        if self.clock is None or self.relative:
            return None
        if self.day is not None:
            year = self.day[0] or (context.day.year if context.day else None)
            if year is None:
                return None
            try:
                on = date(year, self.day[1], self.day[2])
            except ValueError:
                return None
        elif context.day is not None:
            on = context.day
        else:
            return None
        moment = datetime.combine(on, time(*self.clock), context.zone)
        return moment.astimezone(UTC)


@dataclass(frozen=True)
class PageClock:
    """The date and UTC offset a page's bare times are relative to."""

    day: date | None = None
    zone: tzinfo = UTC

    @classmethod
    def of(cls, moment: datetime | None) -> PageClock:
        """The clock of a page last modified (or published) at `moment` (aware)."""
        if moment is None:
            return cls()
        return cls(moment.date(), moment.tzinfo or UTC)

    def on(self, day: tuple[int | None, int, int]) -> PageClock:
        """This clock on another day (a date heading); the year defaults to the page's, or
        the year before when that would put the day after the page's date."""
        year = day[0]
        if year is None:
            if self.day is None:
                return self
            year = self.day.year
            if (day[1], day[2]) > (self.day.month, self.day.day):
                year -= 1
        try:
            return PageClock(date(year, day[1], day[2]), self.zone)
        except ValueError:
            return self


def leading_time(text: str) -> TextTime | None:
    """The date and/or time at the start of `text` (after a weekday), or None."""
    head = text[:HEAD]
    pos = _skip(head, 0)
    found = _WEEKDAY.match(head, pos)
    if found and found.group("w").lower() in _WEEKDAYS:
        pos = found.end()
    relative = _RELATIVE.match(head, pos)
    if relative:
        return TextTime(relative=True, end=_after(head, relative.end()))
    day, pos_after_day = _date_at(head, pos)
    if day is not None:
        pos = _skip(head, pos_after_day)
        at = _AT.match(head, pos)
        if at and _CLOCK.match(head, at.end()):
            pos = at.end()
    clock, pos_after_clock = _clock_at(head, pos)
    if clock is None:
        if day is None:
            return None
        return TextTime(day=day, end=_after(head, pos_after_day))
    end = pos_after_clock
    if day is None:  # "18:16 (IST), Oct 02"
        trailing, after = _date_at(head, _skip(head, end))
        if trailing is not None:
            day, end = trailing, after
    return TextTime(day=day, clock=clock, end=_after(head, end))


def is_time_only(text: str) -> bool:
    """Whether `text` (short) is a date, a time or both and nothing else."""
    stripped = text.strip()
    if not stripped or len(stripped) > 60:
        return False
    found = leading_time(stripped)
    return found is not None and found.end >= len(stripped)


def _skip(head: str, pos: int) -> int:
    while pos < len(head) and (head[pos].isspace() or head[pos] in ",|·•–—-"):
        pos += 1
    return pos


def _after(head: str, pos: int) -> int:
    found = _TAIL_SEP.match(head, pos)
    return found.end() if found else pos


def _date_at(head: str, pos: int) -> tuple[tuple[int | None, int, int] | None, int]:
    for form in _DATE_FORMS:
        found = form.match(head, pos)
        if found is None:
            continue
        groups = found.groupdict()
        if groups.get("mn") is not None:
            month = MONTHS.get(groups["mn"].lower().rstrip("."))
            if month is None:
                continue
        else:
            month = int(groups["m"])
        day = int(groups["d"])
        year_text = groups.get("y")
        year = int(year_text) if year_text else None
        if year is not None and year < 100:
            year += 2000
        if 1 <= month <= 12 and 1 <= day <= 31:
            return (year, month, day), found.end()
    return None, pos


def _clock_at(head: str, pos: int) -> tuple[tuple[int, int] | None, int]:
    found = _CLOCK.match(head, pos)
    if found is None:
        return None, pos
    hour, minute = int(found.group("h")), int(found.group("min"))
    ampm = (found.group("ampm") or "").lower()
    if found.group("sep") == "." and not ampm and not found.group("suffix") \
            and not _AFTER_DOT_CLOCK.match(head, found.end()):
        return None, pos
    if ampm:
        if hour > 12 or hour == 0:
            return None, pos
        hour = hour % 12 + (12 if ampm == "p" else 0)
    return (hour, minute), found.end()

