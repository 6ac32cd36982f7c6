"""Human-written dates -> ISO dates: a parallel "translation" task with no download.

Each pair is a date written the way people write it, in one of many formats
("Saturday, 9 May 2018", "09/05/18", "may 9th 2018", "9.5.2018", ...), and
the same date as ISO 8601 ("2018-05-09"). Dates run from 1950-01-01 to
2049-12-31; two-digit years read 50-99 as 19xx and 00-49 as 20xx, and
numeric day/month formats are always day first, so every source has exactly
one right answer.

The split is by date: no test date appears, in any format, in training.

Examples:

>>> from keras_recipes.datasets.dates import load_dates
>>> train, test = load_dates(num_train=20000, num_test=2000, seed=0)
>>> train[0]
('Sun 28 Mar 1965', '1965-03-28')
"""

from __future__ import annotations

import datetime
import random

MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
FIRST_DAY = datetime.date(1950, 1, 1)
LAST_DAY = datetime.date(2049, 12, 31)


def _ordinal(day: int) -> str:
    suffix = "th" if 11 <= day % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


def _fields(date: datetime.date) -> dict:
    month = MONTHS[date.month - 1]
    weekday = WEEKDAYS[date.weekday()]
    return {
        "d": str(date.day),
        "dd": f"{date.day:02d}",
        "dth": _ordinal(date.day),
        "m": str(date.month),
        "mm": f"{date.month:02d}",
        "month": month,
        "mon": month[:3],
        "yyyy": str(date.year),
        "yy": f"{date.year % 100:02d}",
        "weekday": weekday,
        "wd": weekday[:3],
    }


# Templates over _fields; each is written as-is, lower-cased or upper-cased.
FORMATS = [
    "{weekday}, {d} {month} {yyyy}",
    "{weekday} {dth} {month} {yyyy}",
    "{wd} {d} {mon} {yyyy}",
    "{d} {month} {yyyy}",
    "{dd} {mon} {yyyy}",
    "{d} {mon} {yy}",
    "{month} {d}, {yyyy}",
    "{mon} {dth} {yyyy}",
    "{month} {dth}, {yyyy}",
    "{wd}, {month} {d}, {yyyy}",
    "{dth} of {month} {yyyy}",
    "{dd}/{mm}/{yy}",
    "{dd}/{mm}/{yyyy}",
    "{d}/{m}/{yyyy}",
    "{d}.{m}.{yyyy}",
    "{dd}.{mm}.{yy}",
    "{dd}-{mon}-{yyyy}",
    "{d}-{m}-{yy}",
    "{yyyy}/{mm}/{dd}",
    "{yyyy} {month} {d}",
]


def format_date(date: datetime.date, template: str, case: str = "as_is") -> str:
    """Writes `date` with one of `FORMATS`, `case` in "as_is" | "lower" | "upper"."""
    text = template.format(**_fields(date))
    if case == "lower":
        return text.lower()
    if case == "upper":
        return text.upper()
    return text


def random_human_date(date: datetime.date, rng: random.Random) -> str:
    """One human-written form of `date`, format and case drawn from `rng`."""
    template = rng.choice(FORMATS)
    case = rng.choices(["as_is", "lower", "upper"], weights=[6, 3, 1])[0]
    return format_date(date, template, case)


def load_dates(
    num_train: int = 20000, num_test: int = 2000, seed: int = 0
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Train and held-out test pairs `(human, iso)` of the dates task.

    Args:
        num_train: int. Training pairs. Defaults to `20000`.
        num_test: int. Test pairs; their dates never occur in training.
            Defaults to `2000`.
        seed: int. Everything is drawn from `random.Random(seed)`, so a seed
            gives the same pairs on every machine. Defaults to `0`.

    Returns:
        `(train, test)`: two lists of `(source, target)` string pairs.
    """
    days = (LAST_DAY - FIRST_DAY).days + 1
    if num_train < 0 or num_test < 0:
        raise ValueError(f"num_train and num_test must be >= 0, got {num_train}, {num_test}.")
    if num_test > days // 2:
        raise ValueError(f"num_test={num_test} is too many: at most {days // 2} held-out dates.")
    rng = random.Random(seed)
    order = list(range(days))
    rng.shuffle(order)
    test_days, train_days = order[:num_test], order[num_test:]

    def pairs(day_offsets: list[int], n: int) -> list[tuple[str, str]]:
        out = []
        for _ in range(n):
            date = FIRST_DAY + datetime.timedelta(days=rng.choice(day_offsets))
            out.append((random_human_date(date, rng), date.isoformat()))
        return out

    train = pairs(train_days, num_train)
    test = [
        (random_human_date(date, rng), date.isoformat())
        for date in (FIRST_DAY + datetime.timedelta(days=d) for d in test_days)
    ]
    return train, test
