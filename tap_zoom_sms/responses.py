"""Reading Zoom's responses: bodies, error codes and the messages built from them."""

from __future__ import annotations

import json
import logging
import typing as t

if t.TYPE_CHECKING:
    import requests

_BODY = "_zoom_body"
#: The tap's logger (the SDK names it after the tap).
LOGGER = "tap-zoom-sms"

#: Zoom's error codes for "the next page token is invalid or expired".
PAGE_TOKEN_CODES = frozenset({300, 400})
#: 404 codes for a session that vanished between the list and its details.
SESSION_GONE_CODES = frozenset({7012, 7013, 12004})


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
