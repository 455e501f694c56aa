"""Where settings come from: JSON files and ``TAP_ZOOM_SMS_*`` variables, each problem in one line.

The SDK reads these files with a bare ``json.load`` (a missing or broken file is a
traceback) and converts environment variables only for integers, booleans and
arrays (``TAP_ZOOM_SMS_MEDIUM_REQUESTS_PER_SECOND=20`` reached the checks as the
string ``'20'``). Here every JSON Schema type is converted, a value that does not
convert names its variable, and a setting the tap does not know is pointed out with
the closest one it does.
"""

from __future__ import annotations

import difflib
import json
import os
import typing as t

from dotenv import find_dotenv, load_dotenv

from tap_zoom_sms.errors import SettingsError
from tap_zoom_sms.sdk import schema_types

TRUE = frozenset({"true", "1", "yes", "on"})
FALSE = frozenset({"false", "0", "no", "off", ""})


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
        if schema_types.is_boolean_type(schema):
            return _boolean(value)
        if schema_types.is_integer_type(schema):
            return int(value)
        if schema_types.is_number_type(schema):
            number = float(value)
            return int(number) if number.is_integer() else number
        if schema_types.is_array_type(schema):
            return _array(value, strings=schema_types.is_string_array_type(schema))
        if schema_types.is_object_type(schema):
            return load_json_object(value, f"environment variable {name}")
    except SettingsError:
        raise
    except ValueError:
        kind = next(
            k for k in ("boolean", "integer", "number", "array") if getattr(schema_types, f"is_{k}_type")(schema)
        )
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
