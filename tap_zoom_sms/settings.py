"""Where settings come from: JSON files and ``TAP_ZOOM_SMS_*`` variables, each problem in one line.

The SDK reads these files with a bare ``json.load`` (a missing or broken file is a
traceback) and converts environment variables only for integers, booleans and
arrays (``TAP_ZOOM_SMS_MEDIUM_REQUESTS_PER_SECOND=20`` reached the checks as the
string ``'20'``). Here every JSON Schema type is converted, a value that does not
convert names its variable, and a setting the tap does not know is pointed out with
the closest one it does.
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
import math
import os
import typing as t

from dotenv import find_dotenv, load_dotenv
from singer_sdk.helpers import _typing

from tap_zoom_sms.errors import SettingsError

TRUE = frozenset({"true", "1", "yes", "on"})
FALSE = frozenset({"false", "0", "no", "off", ""})

# What the tap's arithmetic on settings can hold. A value outside these ranges passed the
# JSON schema (1e9 is an integer to it; NaN and Infinity are numbers to Python's JSON) and
# then ended a run with a traceback after records were written; now it is refused first.

#: The earliest start_date, and the earliest bookmark that means anything: Zoom holds nothing
#: older, and a year before 1000 is not even written as Zoom's dates are (``1-01-01T...``).
EARLIEST_DATE = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
#: The latest end_date: a later one is a placeholder for "no end" (leave end_date unset for
#: that), and the tap's month arithmetic ends in year 9999.
LATEST_END_DATE = dt.datetime(2100, 1, 1, tzinfo=dt.timezone.utc)
#: The longest look-back (``lookback_minutes``, ``contact_center_lookback_hours``): a longer one
#: reads from start_date anyway, and a bookmark less it must stay a date.
MAX_LOOKBACK = dt.timedelta(days=100 * 365)
#: The client-side rates accepted besides 0 (no limit), in requests per second: from one request
#: in 100 seconds to far beyond any Zoom plan's limit.
RATE_RANGE = (0.01, 1000)
#: The longest request_timeout, in seconds: a Zoom response slower than an hour is a hung connection.
MAX_REQUEST_TIMEOUT = 3600


def finite_number(value: t.Any) -> bool:
    """Say whether ``value`` is a JSON number the tap can compute with (not a boolean, NaN or infinite)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def load_json_object(text: str, source: str) -> dict[str, t.Any]:
    """Parse ``text`` as a JSON object; ``source`` (e.g. "config file c.json") names it in errors."""
    if not text.strip():
        raise SettingsError(f"{source} is empty")
    try:
        value = json.loads(text)
    except ValueError as exc:
        where = f" at line {exc.lineno}, column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
        raise SettingsError(f"{source} is not valid JSON ({reason}{where})") from None
    if not isinstance(value, dict):
        raise SettingsError(f"{source} must hold a JSON object, not {json_kind(value)}")
    return value


def read_json_file(path: str, what: str) -> dict[str, t.Any]:
    """Read a JSON object from ``path``; ``what`` ("config", "state", "catalog") names the file in errors."""
    source = f"{what} file {path}"
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except FileNotFoundError:
        raise SettingsError(f"{source} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise SettingsError(f"{source} cannot be read ({reason})") from None
    return load_json_object(text, source)


def json_kind(value: t.Any) -> str:
    """Name a JSON value's type as JSON does ("an array", "a string", ...)."""
    kinds = ((bool, "a boolean"), (int, "a number"), (float, "a number"), (str, "a string"), (list, "an array"))
    if value is None:
        return "null"
    return next((name for kind, name in kinds if isinstance(value, kind)), "an object")


def environment_config(schema: dict[str, t.Any], prefix: str) -> dict[str, t.Any]:
    """Read every setting of ``schema`` from ``{prefix}{SETTING}`` variables (and a ``.env`` file), typed.

    Like the SDK, a ``.env`` file in the working folder (or above) is read first
    without overriding variables already set.
    """
    if dotenv := find_dotenv(usecwd=True):
        load_dotenv(dotenv, override=False)
    config: dict[str, t.Any] = {}
    for key, property_schema in schema.get("properties", {}).items():
        name = prefix + key.upper().replace("-", "_")
        if name in os.environ:
            config[key] = _convert(os.environ[name], property_schema, name)
    return config


def _convert(value: str, schema: dict[str, t.Any], name: str) -> t.Any:
    """Convert a variable's text to the setting's JSON type, or fail naming the variable."""
    try:
        if _typing.is_boolean_type(schema):
            return _boolean(value)
        if _typing.is_integer_type(schema):
            return int(value)
        if _typing.is_number_type(schema):
            number = float(value)
            return int(number) if number.is_integer() else number
        if _typing.is_array_type(schema):
            return _array(value, strings=_typing.is_string_array_type(schema))
        if _typing.is_object_type(schema):
            return load_json_object(value, f"environment variable {name}")
    except SettingsError:
        raise
    except ValueError:
        kind = next(k for k in ("boolean", "integer", "number", "array") if getattr(_typing, f"is_{k}_type")(schema))
        raise SettingsError(f"environment variable {name}={value!r} is not {_article(kind)} {kind}") from None
    return value


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _boolean(value: str) -> bool:
    text = value.strip().lower()
    if text in TRUE:
        return True
    if text in FALSE:
        return False
    raise ValueError(value)


def _array(value: str, *, strings: bool) -> list[t.Any]:
    """A JSON array, or (for arrays of strings) the SDK's older ``a,b,c`` form."""
    text = value.strip()
    if text.startswith("["):
        parsed = json.loads(text)
        if not isinstance(parsed, list):
            raise ValueError(value)
        return parsed
    if not strings:
        raise ValueError(value)
    return [part.strip() for part in text.split(",") if part.strip()]


def unknown_settings(config: t.Mapping[str, t.Any], schema: dict[str, t.Any]) -> list[str]:
    """Return one warning for each setting ``schema`` does not know, with the closest known name."""
    known = list(schema.get("properties", {}))
    warnings = []
    for key in config:
        if key in known:
            continue
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        warnings.append(f"Unknown setting {key!r} is ignored{hint}")
    return warnings
