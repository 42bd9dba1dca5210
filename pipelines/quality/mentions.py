"""What counts as a child's data in an outgoing cell: normalized values and mentions.

Pure functions (no Great Expectations), shared by the output gate and its expectations.

- :func:`normalize`: how two cells are compared: dates as ISO ``YYYY-MM-DD``, text with runs of
  white space made one space, ends stripped, case folded; empty is ``None``.
- :func:`value_forms`: the ways a child's value can be written in a cell: a date as ISO,
  ``MM/DD/YYYY`` and ``M/D/YYYY``; anything else as its normalized text.
- :func:`carries_full_date`: whether a cell's text holds a full date (a day of a month of a
  year), whoever's, in any common form: numeric with separators in any order (``2021-11-15``,
  ``15.11.2021``, ``11/15/21``), compact (``20211115``, ``15112021``, ``211115``), ISO
  ordinal (``2021-319``, ``2021319``: a seven-digit run only for years 1900-2099) or week
  (``2021-W46-1``, ``2021W461``), a compact datetime (``20211115000000``), with an English,
  Spanish or French month name, abbreviated or not, accents or not (``Nov 15, 2021``,
  ``15 November 2021``, ``2021-Nov-15``, ``15 de noviembre de 2021``, ``15 nov. 2021``,
  ``1er février 2021``), or a column's own full ``strftime`` pattern; where the caller says
  the column never rightly holds a five-digit number, also Excel's day number as the whole
  text (``44515``, ``44515.5``: :data:`SERIAL_DAYS`). Every reading is checked against the
  calendar (no 29 February 2023, no day 366 of 2021, no week 53 of 2021). A text the
  column's month pattern reads as a month (``202111`` in a ``%Y%m`` column) is a month, not
  a full date.
- :func:`month_texts`: what a column written with a month pattern rightly holds for each
  recorded date (the first of its month written with the pattern).
- Mentions in free text (a parent's statement). Words are the maximal runs of letters and
  digits (case folded); anything else separates them. A statement *mentions* a person's full
  name when the words of the first and last name (either order; or first, middle, last) occur
  next to each other among its words, so ``Liam Smith``, ``SMITH, Liam`` and ``Liam-Smith``
  all mention Liam Smith; ``Liam`` alone does not (a first name alone names no one in a
  batch of thousands). A statement mentions an id (a program-local id or a state student id
  of at least :data:`MIN_ID_LENGTH` characters) when the id occurs, case folded, with neither a
  letter, digit, ``_`` nor ``-`` on either side. Shorter ids are not looked for: a ``3`` or
  ``12`` in a parent's words is not another child's id.
"""

from __future__ import annotations

import calendar
import datetime as dt
import math
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

NAME_PREFIX = "n:"
ID_PREFIX = "i:"
MIN_ID_LENGTH = 4
_WORD = re.compile(r"[^\W_]+")
_ID_RUN = re.compile(r"[\w-]+")
_SIMPLE_ID = re.compile(r"[\w-]+")


def _missing(value: Any) -> bool:
    if value is None or value is pd.NA:  # pd.NA != pd.NA is NA, whose truth is an error
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    try:
        return bool(value != value)  # NaT, pd.NA (raises on ambiguous types)
    except (TypeError, ValueError):
        return False


def normalize(value: Any) -> str | None:
    """A cell as compared by the row rules (``None`` for empty)."""
    if _missing(value):
        return None
    if isinstance(value, dt.datetime):
        value = value.date()
    if isinstance(value, dt.date):
        return value.isoformat()
    text = " ".join(str(value).split()).casefold()
    return text or None


def value_forms(value: Any) -> list[str]:
    """The normalized ways ``value`` can be written in a cell (none for empty)."""
    if _missing(value):
        return []
    if isinstance(value, dt.datetime):
        value = value.date()
    if isinstance(value, dt.date):
        d = value
        return [
            d.isoformat(),
            f"{d.month:02d}/{d.day:02d}/{d.year:04d}",
            f"{d.month}/{d.day}/{d.year}",
        ]
    text = normalize(value)
    return [text] if text else []


def _as_date(value: Any) -> dt.date | None:
    """``value`` as a date (a date, a datetime, or ISO ``YYYY-MM-DD`` text), else ``None``."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            return None
    return None


def _strftime(date: dt.date, pattern: str) -> str | None:
    """``date`` written as the renderer writes it (``date.strftime``); ``None`` if it cannot."""
    try:
        return date.strftime(pattern)
    except ValueError:
        return None


def _recorded_date(value: Any) -> dt.date | None:
    """A recorded date (:func:`_as_date`, or text pandas reads as a date), else ``None``."""
    date = _as_date(value)
    if date is None and isinstance(value, str) and value.strip():
        try:
            stamp = pd.Timestamp(value.strip())
        except (ValueError, TypeError, OverflowError):
            return None
        return None if pd.isna(stamp) else stamp.date()
    return date


def month_text(value: Any, month: str) -> str | None:
    """What a column written with ``month`` (a ``strftime`` pattern) holds for the recorded
    date ``value`` cut to its month, normalized; ``None`` for no date."""
    date = _recorded_date(value)
    if date is None:
        return None
    return normalize(_strftime(date.replace(day=1), month))


def month_texts(values: Any, month: str) -> np.ndarray:
    """:func:`month_text` of every value, each distinct value once."""
    return mapped(values, lambda v: month_text(v, month))


_MONTHS = {
    # English
    **dict.fromkeys(["jan", "january"], 1),
    **dict.fromkeys(["feb", "february"], 2),
    **dict.fromkeys(["mar", "march"], 3),
    **dict.fromkeys(["apr", "april"], 4),
    "may": 5,
    **dict.fromkeys(["jun", "june"], 6),
    **dict.fromkeys(["jul", "july"], 7),
    **dict.fromkeys(["aug", "august"], 8),
    **dict.fromkeys(["sep", "sept", "september"], 9),
    **dict.fromkeys(["oct", "october"], 10),
    **dict.fromkeys(["nov", "november"], 11),
    **dict.fromkeys(["dec", "december"], 12),
    # Spanish
    **dict.fromkeys(["ene", "enero"], 1),
    "febrero": 2,
    "marzo": 3,
    **dict.fromkeys(["abr", "abril"], 4),
    "mayo": 5,
    "junio": 6,
    "julio": 7,
    **dict.fromkeys(["ago", "agosto"], 8),
    **dict.fromkeys(["set", "septiembre", "setiembre"], 9),
    "octubre": 10,
    "noviembre": 11,
    **dict.fromkeys(["dic", "diciembre"], 12),
    # French (accents folded: fevrier, aout, decembre)
    **dict.fromkeys(["janv", "janvier"], 1),
    **dict.fromkeys(["fev", "fevr", "fevrier"], 2),
    "mars": 3,
    **dict.fromkeys(["avr", "avril"], 4),
    "mai": 5,
    "juin": 6,
    **dict.fromkeys(["juil", "juillet"], 7),
    "aout": 8,
    "septembre": 9,
    "octobre": 10,
    "novembre": 11,
    "decembre": 12,
}
"""Month names and abbreviations (English, Spanish, French; accents folded) -> month."""
_LETTER = r"[^\W\d_]"
_MONTH_NAME = (
    rf"(?<!{_LETTER})("
    + "|".join(sorted(_MONTHS, key=lambda name: (-len(name), name)))
    + rf")(?!{_LETTER})\.?"
)
_NUMERIC_SEP = r"(?:\s*[-/.]\s*|\s)"
_NAMED_SEP = r"\s*[-/.,]?\s*"
_DAY = r"(\d{1,2})(?!\d)(?:st|nd|rd|th|er|re|ro|o)?"
"""A day of the month: ``15``, ``15th``, French ``1er``, Spanish ``1ro``, ``1º``."""
_OF = r"(?:(?:of|de)\s+)?"
_OF_YEAR = r"(?:(?:de|del)\s+)?"
_YEAR = r"(\d{4}|\d{2})(?!\d)"
_NUMERIC = re.compile(
    rf"(?<!\d)(?=(\d{{1,4}}){_NUMERIC_SEP}(\d{{1,2}}){_NUMERIC_SEP}(\d{{1,4}})(?!\d))"
)
_COMPACT = re.compile(r"(?<!\d)(\d{8}|\d{6})(?!\d)")
_MONTH_DAY_YEAR = re.compile(_MONTH_NAME + _NAMED_SEP + _DAY + _NAMED_SEP + _OF_YEAR + _YEAR)
_DAY_MONTH_YEAR = re.compile(
    r"(?<!\d)" + _DAY + _NAMED_SEP + _OF + _MONTH_NAME + _NAMED_SEP + _OF_YEAR + _YEAR
)
_YEAR_MONTH_DAY = re.compile(
    r"(?<!\d)(\d{4})" + _NAMED_SEP + _MONTH_NAME + _NAMED_SEP + r"(\d{1,2})(?!\d)"
)
_ORDINAL = re.compile(r"(?<!\d)(\d{4})(-?)(\d{3})(?!\d)")
"""ISO ordinal date: year and day of the year, ``2021-319`` or ``2021319``."""
_WEEK = re.compile(r"(?<!\d)(\d{4})-?w(\d{2})-?([1-7])(?!\d)")
"""ISO week date: year, week and weekday, ``2021-w46-1`` or ``2021w461`` (case folded)."""
_DATETIME = re.compile(r"(?<!\d)(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})?(?!\d)")
"""A compact datetime: ``YYYYMMDDHHMM`` or ``YYYYMMDDHHMMSS``."""
_SERIAL = re.compile(r"(\d{5})(?:\.\d+)?")
"""A whole cell that is Excel's day number (and a fraction of a day)."""
SERIAL_DAYS = (10000, 73050)
"""The Excel day numbers read as dates: 1927-05-18 to 2099-12-31 (five digits)."""
_EXCEL_EPOCH = dt.date(1899, 12, 30)
_PLAUSIBLE_YEARS = (1900, 2099)
"""Years of an unseparated ordinal date (``2021319``): seven digits read so only then."""


def _is_day(year: str, month: str | int, day: str) -> bool:
    """Whether the parts name a day of the calendar (a two-digit year is 20yy)."""
    y = int(year) + (2000 if len(year) <= 2 else 0)
    try:
        dt.date(y, int(month), int(day))
    except ValueError:
        return False
    return len(year) in (2, 4)


def _numeric_day(a: str, b: str, c: str) -> bool:
    """Whether three numbers (in text order) read as a day in any common order."""
    readings: list[tuple[str, str, str]] = []  # year, month, day
    if len(a) == 4:
        readings += [(a, b, c), (a, c, b)]
    if len(c) == 4:
        readings += [(c, b, a), (c, a, b)]
    if len(a) <= 2 and len(c) <= 2:
        readings += [(a, b, c), (c, b, a), (c, a, b)]
    return any(_is_day(*r) for r in readings)


def _compact_day(digits: str) -> bool:
    """Whether a run of six or eight digits reads as a day in any common order."""
    if len(digits) == 8:
        y1, m1, d1 = digits[:4], digits[4:6], digits[6:]
        d2, m2, y2 = digits[:2], digits[2:4], digits[4:]
        return any(_is_day(*r) for r in ((y1, m1, d1), (y1, d1, m1), (y2, m2, d2), (y2, d2, m2)))
    a, b, c = digits[:2], digits[2:4], digits[4:]
    return any(_is_day(*r) for r in ((a, b, c), (c, b, a), (c, a, b)))


def _parses_as(text: str, pattern: str) -> bool:
    """Whether ``text`` is exactly what ``pattern`` writes for some date (normalized)."""
    try:
        parsed = dt.datetime.strptime(text, pattern.replace("%-", "%"))
    except ValueError:
        return False
    return normalize(_strftime(parsed.date(), pattern)) == text


def _ordinal_day(year: str, dash: str, day: str) -> bool:
    """Whether ``year`` and ``day`` (of the year, 001-366) name a day of the calendar."""
    y, d = int(year), int(day)
    if not dash and not _PLAUSIBLE_YEARS[0] <= y <= _PLAUSIBLE_YEARS[1]:
        return False
    return y >= 1 and 1 <= d <= (366 if calendar.isleap(y) else 365)


def _week_day(year: str, week: str, day: str) -> bool:
    """Whether an ISO year, week and weekday name a day (week 53 only in a 53-week year)."""
    try:
        dt.date.fromisocalendar(int(year), int(week), int(day))
    except ValueError:
        return False
    return True


def _datetime_day(m: re.Match[str]) -> bool:
    """Whether a compact datetime's parts name a day and a time of it."""
    year, month, day, hour, minute = m.group(1, 2, 3, 4, 5)
    second = m.group(6) or "0"
    return _is_day(year, month, day) and int(hour) < 24 and int(minute) < 60 and int(second) < 60


def _serial_day(text: str) -> bool:
    """Whether the whole ``text`` is an Excel day number of :data:`SERIAL_DAYS`."""
    m = _SERIAL.fullmatch(text)
    if m is None or not SERIAL_DAYS[0] <= int(m.group(1)) <= SERIAL_DAYS[1]:
        return False
    return (_EXCEL_EPOCH + dt.timedelta(days=int(m.group(1)))).year <= _PLAUSIBLE_YEARS[1]


def _folded(text: str) -> str:
    """``text`` without accents (``février`` -> ``fevrier``; ``1º`` -> ``1o``)."""
    if text.isascii():
        return text
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _named_day(text: str) -> bool:
    """Whether ``text`` holds a date written with a month name (any order of the parts)."""
    for m in _MONTH_DAY_YEAR.finditer(text):
        if _is_day(m.group(3), _MONTHS[m.group(1)], m.group(2)):
            return True
    for m in _DAY_MONTH_YEAR.finditer(text):
        if _is_day(m.group(3), _MONTHS[m.group(2)], m.group(1)):
            return True
    for m in _YEAR_MONTH_DAY.finditer(text):
        if _is_day(m.group(1), _MONTHS[m.group(2)], m.group(3)):
            return True
    return False


def carries_full_date(
    text: str, full: str | None = None, month: str | None = None, serial: bool = False
) -> bool:
    """Whether the normalized ``text`` holds a full date anywhere in it (see the module
    docstring): a common form, or exactly what ``full`` writes (when it differs from
    ``month``), or with ``serial`` (a column that never rightly holds a five-digit whole
    number) Excel's day number as the whole text; never a text that is exactly what
    ``month`` writes for a month. Every reading is checked against the calendar."""
    if month and _parses_as(text, month):
        return False
    if full and full != month and _parses_as(text, full):
        return True
    if serial and _serial_day(text):
        return True
    if any(_numeric_day(*m.groups()) for m in _NUMERIC.finditer(text)):
        return True
    if any(_compact_day(m.group(1)) for m in _COMPACT.finditer(text)):
        return True
    if any(_ordinal_day(*m.groups()) for m in _ORDINAL.finditer(text)):
        return True
    if any(_week_day(*m.groups()) for m in _WEEK.finditer(text)):
        return True
    if any(_datetime_day(m) for m in _DATETIME.finditer(text)):
        return True
    return _named_day(_folded(text))


def full_date_flags(
    texts: np.ndarray, full: str | None, month: str | None, serial: bool = False
) -> np.ndarray:
    """:func:`carries_full_date` of normalized texts (``None`` is no date), each distinct
    text once."""
    codes, uniques = pd.factorize(texts, use_na_sentinel=True)
    flags = [carries_full_date(u, full, month, serial) for u in uniques]
    return np.array([*flags, False], dtype=bool)[codes]


_UNIFORM = frozenset({"string", "empty", "date", "datetime", "integer"})
"""Inferred kinds whose distinct values can be told apart by hashing alone (no ``1 == 1.0``
or ``True == 1`` between values written differently; whole numbers alone, as a year or an
age column of an API record, are one kind)."""


_ASCII_SPACE = "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f "
"""The ASCII characters ``str.split()`` splits on (``str.isspace``)."""
_SPACE_RUN = "[\t\n\x0b\x0c\r\x1c-\x1f ]{2,}|[\t\n\x0b\x0c\r\x1c-\x1f]"
"""A run of :data:`_ASCII_SPACE` other than one plain space (which is already what the run
becomes): the first alternative takes a whole run of two or more, so each run is made one
space, and the many single spaces between words are not rewritten (two thirds of the cost)."""


def normalize_strings(texts: Any) -> np.ndarray:
    """:func:`normalize` of each string (a sequence of ``str``, or an Arrow string array
    without nulls): ASCII strings column-wise with Arrow (white space runs made one space,
    ends trimmed, lower case: what ``split``/``casefold`` do to ASCII), the others one by one.
    An object array, ``None`` for empty."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not len(texts):
        return np.empty(0, dtype=object)
    if isinstance(texts, pa.Array | pa.ChunkedArray):
        array = texts
    else:
        array = pa.array(list(texts), type=pa.string())
    ascii_ = pc.string_is_ascii(array).to_numpy(zero_copy_only=False)
    spaced = pc.replace_substring_regex(array, pattern=_SPACE_RUN, replacement=" ")
    folded = pc.ascii_lower(pc.utf8_trim(spaced, characters=" "))
    folded = pc.if_else(pc.equal(folded, ""), pa.scalar(None, folded.type), folded)
    out = np.asarray(folded.to_numpy(zero_copy_only=False), dtype=object)
    others = np.flatnonzero(~ascii_)
    if len(others):
        originals = array.take(pa.array(others)).to_pylist()
        for i, text in zip(others, originals, strict=True):
            out[i] = normalize(text)
    return out


def arrow_strings(values: Any) -> Any:
    """``values`` as an Arrow string array when they are one already (a pandas Series or
    array of an Arrow string dtype), else ``None``."""
    import pyarrow as pa

    array = values.array if isinstance(values, pd.Series) else values
    dtype = getattr(array, "dtype", None)
    if isinstance(dtype, pd.ArrowDtype):
        kind = dtype.pyarrow_dtype
        arrow = pa.types.is_string(kind) or pa.types.is_large_string(kind)
    else:
        arrow = isinstance(dtype, pd.StringDtype) and dtype.storage == "pyarrow"
    return pa.chunked_array(pa.array(array)) if arrow else None


def _per_distinct(values: Any, fn: Any, strings: Any = None) -> tuple[np.ndarray, Any]:
    """``fn`` of each distinct non-missing value, and each value's position among them (-1
    when missing). Values of one kind are hashed together (an Arrow string column by Arrow's
    dictionary encoding); a mixed column goes one by one. ``strings``, if given, does what
    ``fn`` does to the distinct strings at once (used when every value is a string)."""
    import pyarrow.compute as pc

    arrow = arrow_strings(values)
    if arrow is not None:
        encoded = pc.dictionary_encode(arrow).combine_chunks()
        codes = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False)
        codes = codes.astype(np.intp, copy=False)
        uniques = encoded.dictionary
        if strings is not None:
            return codes, strings(uniques)
        return codes, [fn(u) for u in uniques.to_pylist()]
    array = np.asarray(values, dtype=object)
    kind = pd.api.types.infer_dtype(array, skipna=True)
    if kind in _UNIFORM:
        codes, uniques = pd.factorize(array, use_na_sentinel=True)
        if strings is not None and kind == "string":
            return codes, strings(list(uniques))
        return codes, [fn(u) for u in uniques]
    memo: dict[tuple[type, Any], int] = {}
    results: list[Any] = []
    codes = np.full(len(array), -1, dtype=np.intp)
    for i, value in enumerate(array):
        if _missing(value):
            continue
        try:
            key = (type(value), value)
            at = memo.get(key)
        except TypeError:  # unhashable: its own
            key, at = None, None  # type: ignore[assignment]
        if at is None:
            at = len(results)
            results.append(fn(value))
            if key is not None:
                memo[key] = at
        codes[i] = at
    return codes, results


def _table(results: Any) -> np.ndarray:
    """``results`` as an object array with a trailing ``None`` (what code -1 picks)."""
    table = np.empty(len(results) + 1, dtype=object)
    table[: len(results)] = results if isinstance(results, np.ndarray) else list(results)
    return table


def mapped(values: Any, fn: Any) -> np.ndarray:
    """``fn`` of every non-missing value (``None`` for missing), each distinct value once."""
    codes, results = _per_distinct(values, fn)
    return _table(results)[codes]


def normalized(values: Any) -> np.ndarray:
    """:func:`normalize` of every value, each distinct value normalized once."""
    codes, results = _per_distinct(values, normalize, normalize_strings)
    return _table(results)[codes]  # -1 (missing) picks the trailing None


def forms_table(values: Any) -> tuple[np.ndarray, np.ndarray]:
    """:func:`value_forms` of each distinct value as a row of a table (``None`` past a
    value's forms, a last row of ``None`` for missing; no column for an empty input), and
    each value's row (``codes``, -1 for missing): ``table[codes]`` is every value's forms."""
    codes, results = _per_distinct(values, value_forms, normalize_strings)
    if isinstance(results, np.ndarray):  # strings: one form each, or none when empty
        width = 1 if pd.notna(results).any() else 0
        return codes, _table(results).reshape(-1, 1)[:, :width]
    width = max((len(forms) for forms in results), default=0)
    table = np.full((len(results) + 1, width), None, dtype=object)
    for i, forms in enumerate(results):
        table[i, : len(forms)] = forms
    return codes, table


def words(text: Any) -> tuple[str, ...]:
    """The words of ``text``, case folded."""
    if _missing(text):
        return ()
    return tuple(_WORD.findall(str(text).casefold()))


def name_keys(first: Any, middle: Any, last: Any) -> set[str]:
    """The mention keys of a full name: first last, last first, first middle last."""
    f, m, s = words(first), words(middle), words(last)
    if not f or not s:
        return set()
    keys = {NAME_PREFIX + " ".join(f + s), NAME_PREFIX + " ".join(s + f)}
    if m:
        keys.add(NAME_PREFIX + " ".join(f + m + s))
    return keys


def id_key(value: Any) -> str | None:
    """The mention key of an id, ``None`` when empty or shorter than :data:`MIN_ID_LENGTH`."""
    if _missing(value):
        return None
    text = str(value).strip()
    if len(text) < MIN_ID_LENGTH:
        return None
    return ID_PREFIX + text.casefold()


def _joined_words(value: Any) -> str | None:
    found = words(value)
    return " ".join(found) if found else None


def joined_words(values: Any) -> np.ndarray:
    """Each value's :func:`words` joined by one space (``None`` when it has none), each
    distinct value split once."""
    codes, results = _per_distinct(values, _joined_words)
    table = np.array([*results, None], dtype=object)
    return table[codes]


def _concat(*parts: Any) -> np.ndarray:
    """Element-wise text concatenation of object arrays and strings (no missing allowed)."""
    out = np.asarray(parts[0], dtype=object)
    for part in parts[1:]:
        out = out + (np.asarray(part, dtype=object) if not isinstance(part, str) else part)
    return np.asarray(out, dtype=object)


def name_key_matrix(first: Any, middle: Any, last: Any) -> np.ndarray:
    """:func:`name_keys` of every row as a matrix (rows x 3; ``None`` where a row has fewer
    keys): first last, last first, first middle last; each distinct name split once."""
    f, s = joined_words(first), joined_words(last)
    m = joined_words(middle) if middle is not None else np.full(len(f), None, dtype=object)
    out = np.full((len(f), 3), None, dtype=object)
    named = np.flatnonzero(pd.notna(f) & pd.notna(s))
    if len(named):
        fn, sn = f[named], s[named]
        out[named, 0] = _concat(NAME_PREFIX, fn, " ", sn)
        out[named, 1] = _concat(NAME_PREFIX, sn, " ", fn)
        full = named[pd.notna(m[named])]
        if len(full):
            out[full, 2] = _concat(NAME_PREFIX, f[full], " ", m[full], " ", s[full])
    return out


def id_keys(values: Any) -> np.ndarray:
    """:func:`id_key` of every value (each distinct value once)."""
    codes, results = _per_distinct(values, id_key)
    table = np.array([*results, None], dtype=object)
    return table[codes]


@dataclass
class KeyIndex:
    """Mention keys indexed for scanning text: names by first word, ids by whole run."""

    names: dict[str, set[tuple[str, ...]]] = field(default_factory=dict)
    ids: set[str] = field(default_factory=set)
    other_ids: list[tuple[str, re.Pattern[str]]] = field(default_factory=list)
    pending: Iterable[str] | None = None
    """Keys not indexed yet (:meth:`lazy`): indexed on the first :meth:`find`."""

    @classmethod
    def of(cls, keys: Iterable[str]) -> KeyIndex:
        """An index of ``keys`` (from :func:`name_keys` and :func:`id_key`)."""
        index = cls()
        index._add(keys)
        return index

    @classmethod
    def lazy(cls, keys: Iterable[str]) -> KeyIndex:
        """An index of ``keys`` built only when first searched (most batches carry no parent
        statement, the only text searched for mentions)."""
        return cls(pending=keys)

    def _add(self, keys: Iterable[str]) -> None:
        index = self
        for key in keys:
            if key.startswith(NAME_PREFIX):
                parts = tuple(key[len(NAME_PREFIX) :].split(" "))
                index.names.setdefault(parts[0], set()).add(parts)
            elif key.startswith(ID_PREFIX):
                value = key[len(ID_PREFIX) :]
                if _SIMPLE_ID.fullmatch(value):
                    index.ids.add(value)
                else:
                    bounded = rf"(?<![\w-]){re.escape(value)}(?![\w-])"
                    index.other_ids.append((value, re.compile(bounded)))

    def find(self, text: Any) -> set[str]:
        """The keys of this index that ``text`` mentions."""
        if self.pending is not None:
            pending, self.pending = self.pending, None
            self._add(pending)
        if _missing(text):
            return set()
        folded = str(text).casefold()
        found: set[str] = set()
        tokens = _WORD.findall(folded)
        for i, token in enumerate(tokens):
            for parts in self.names.get(token, ()):
                if tuple(tokens[i : i + len(parts)]) == parts:
                    found.add(NAME_PREFIX + " ".join(parts))
        if self.ids:
            found.update(ID_PREFIX + run for run in _ID_RUN.findall(folded) if run in self.ids)
        for value, pattern in self.other_ids:
            if pattern.search(folded):
                found.add(ID_PREFIX + value)
        return found
