"""Reading Zoom's responses: bodies, error codes and the messages built from them."""

from __future__ import annotations

import json
import logging
import typing as t
from urllib.parse import parse_qs, urlsplit

if t.TYPE_CHECKING:
    import requests

_BODY = "_zoom_body"
#: The tap's logger (the SDK names it after the tap).
LOGGER = "tap-zoom-sms"

#: Zoom's error codes for "the next page token is invalid or expired".
PAGE_TOKEN_CODES = frozenset({300, 400})
#: 404 codes for a session that vanished between the list and its details.
SESSION_GONE_CODES = frozenset({7012, 7013, 12004})


#: The keys of a list page that carry the next page's token (see ``pagination.next_page_token``).
PAGE_TOKEN_KEYS = ("next_page_token", "sync_token")
#: JSON's names of the Python types a JSON body decodes to.
_JSON_TYPES = {
    dict: "an object",
    list: "an array",
    str: "a string",
    bool: "a boolean",
    int: "a number",
    float: "a number",
}


class MalformedResponseError(ValueError):
    """A 2xx response whose body is not a JSON object (truncated, HTML, ...)."""


def zoom_json(response: requests.Response) -> dict[str, t.Any]:
    """Decode a response body once and keep it on the response.

    The body is decoded while the response is validated (so a truncated body is
    retried like any other transient fault), then read again by the record parser
    and the paginator: caching it spares two more decodes per page.
    """
    cached = response.__dict__.get(_BODY)
    if cached is not None:
        return t.cast("dict[str, t.Any]", cached)
    try:
        body = json.loads(_text(response), strict=False)
    except ValueError as exc:
        msg = f"malformed JSON from {response.request.method} {_path(response)} ({exc})"
        raise MalformedResponseError(msg) from None
    if not isinstance(body, dict):
        msg = f"expected a JSON object from {_path(response)}, got {type(body).__name__}"
        raise MalformedResponseError(msg)
    response.__dict__[_BODY] = body
    return body


def _text(response: requests.Response) -> str:
    """Return the body as text: UTF-8, surrogates kept (to be repaired with the records), other bad bytes replaced.

    A byte that is not UTF-8 in one message's text would otherwise make the page
    malformed on every run. Raw control characters in strings are taken too
    (``strict=False`` above), as browsers and most JSON readers do.
    """
    try:
        return response.content.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:
        text = response.content.decode("utf-8", "replace")
    logging.getLogger(LOGGER).warning(
        "Bytes that are not UTF-8 in the answer to GET %s were replaced by U+FFFD", _path(response)
    )
    return text


def is_page(response: requests.Response) -> bool:
    """Say whether ``response`` answers a request for a list page (one that asks for a ``page_size``).

    Every page the tap reads asks for one; a single object (GET one message) does not,
    and its body holds no records array to check.
    """
    if response.request is None or not response.request.url:
        return False
    return "page_size" in parse_qs(urlsplit(response.request.url).query)


def page_fault(body: t.Mapping[str, t.Any], records_key: str) -> str | None:
    """Say what is wrong with a list page's shape, or None when its records and token can be read.

    Zoom's empty result is ``[]``: a records array that is null, missing or not an
    array is a malformed answer (Zoom's OpenAPI marks no field required, so it may
    also mean "nothing"), and so is a page token that is not a string.
    """
    if records_key not in body:
        return f"no {records_key!r} array"
    records = body[records_key]
    if not isinstance(records, list):
        return f"{records_key!r} is {_json_type(records)}, not an array"
    for key in PAGE_TOKEN_KEYS:
        token = body.get(key)
        if token is not None and not isinstance(token, str):
            return f"{key!r} is {_json_type(token)}, not a string"
    return None


def take_as_read(response: requests.Response, records_key: str) -> str:
    """Make a malformed page read as what it can only mean, and say what it was taken as.

    A records array that is not an array becomes ``[]`` (an empty page); a page token
    that is not a string is dropped (without another, the page is its window's last).
    The decoded body kept on the response is replaced, so that the record parser and
    the paginator read the same.
    """
    body = dict(zoom_json(response))
    taken = []
    if not isinstance(body.get(records_key), list):
        body[records_key] = []
        taken.append("an empty page")
    malformed = [key for key in PAGE_TOKEN_KEYS if body.get(key) is not None and not isinstance(body[key], str)]
    for key in malformed:
        del body[key]
    if malformed:
        last = not any(body.get(key) for key in PAGE_TOKEN_KEYS)
        taken.append("the last page of its window" if last else f"a page without its {' or '.join(malformed)}")
    response.__dict__[_BODY] = body
    return " and ".join(taken)


def _json_type(value: object) -> str:
    return "null" if value is None else _JSON_TYPES.get(type(value), type(value).__name__)


def error_fields(response: requests.Response) -> tuple[int | None, str]:
    """Return Zoom's ``(code, message)`` from an error body, whatever its shape.

    Phone errors are ``{"code", "message"}``; Contact Center's expired-token answer
    is ``{"status": false, "errorCode": 401}``; the token endpoint says
    ``{"error", "reason"}``; a proxy may answer with HTML.
    """
    try:
        body = json.loads(response.content or b"null")
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return None, response.reason or ""
    code = body.get("code", body.get("errorCode"))
    message = body.get("message") or body.get("reason") or body.get("error") or ""
    return (code if isinstance(code, int) else None), str(message)


def describe_error(response: requests.Response) -> str:
    """Build a one-line description of an error response.

    Names the request path (never the query or headers), Zoom's code and message,
    and the ``x-zm-trackingid`` Zoom support asks for.
    """
    code, message = error_fields(response)
    text = f"HTTP {response.status_code} from {response.request.method} {_path(response)}"
    if code is not None:
        text += f": code {code}"
    if message:
        text += f": {message}"
    if tracking_id := response.headers.get("x-zm-trackingid"):
        text += f" (x-zm-trackingid {tracking_id})"
    return text


def _path(response: requests.Response) -> str:
    url = response.request.path_url if response.request is not None else response.url
    return url.split("?", 1)[0]
