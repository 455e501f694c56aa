"""Server-to-Server OAuth: account credentials exchanged for hour-long bearer tokens."""

from __future__ import annotations

import base64
import datetime as dt
import json
import threading
import typing as t
from http import HTTPStatus
from urllib.parse import urlsplit

import requests
from singer_sdk.authenticators import BearerTokenAuthenticator, OAuthAuthenticator
from singer_sdk.exceptions import RetriableAPIError

from tap_zoom_sms import retries
from tap_zoom_sms.errors import AuthError
from tap_zoom_sms.network import EnvironmentSession
from tap_zoom_sms.sdk import replace_token_session

#: Attempts at the token endpoint when it cannot be reached or answers 5xx: with
#: request_timeout T and backoff waits of at most 1, 2 and 4 s, a token request gives
#: up within 4T + 7 seconds.
TOKEN_TRIES = 4


class _TokenServerError(RetriableAPIError):
    """The token endpoint failed on its side (5xx): worth another try."""


#: How token requests are retried (by :func:`tap_zoom_sms.retries.call`, like every request):
#: connection errors, timeouts and 5xx, :data:`TOKEN_TRIES` attempts.
TOKEN_RETRIES = retries.RetryPolicy((requests.ConnectionError, requests.Timeout, _TokenServerError), TOKEN_TRIES)


class _TimeoutSession(EnvironmentSession):
    """A session whose every request waits at most ``timeout`` seconds.

    Like every session of the tap, it sends with the environment's CA bundle and
    proxies (see :mod:`tap_zoom_sms.network`).

    The SDK's ``OAuthAuthenticator.update_access_token`` posts with a fixed 60-second
    timeout, whatever the tap's ``request_timeout`` says; this is the narrowest place
    to give the token request the same limit as every other request.
    """

    def __init__(self, timeout: float) -> None:
        """Wait at most ``timeout`` seconds (to connect, and between bytes read)."""
        super().__init__()
        self._timeout = timeout

    def request(self, *args: t.Any, **kwargs: t.Any) -> requests.Response:
        """Send with this session's timeout, not the caller's."""
        kwargs["timeout"] = self._timeout
        return super().request(*args, **kwargs)


#: Renew this long before Zoom's expiry (or a tenth of the lifetime, if shorter),
#: so no request leaves with a token that expires in flight.
EARLY_REFRESH_SECONDS = 300


class ZoomS2SAuthenticator(OAuthAuthenticator):
    """Gets tokens with ``grant_type=account_credentials``, renewing them early.

    The SDK's authenticator renews only once a token has expired and treats a 401
    as final; Zoom tokens can be revoked or rotated at any time, so the streams
    call :meth:`invalidate` on a 401 and retry once with a fresh token.
    """

    def __init__(
        self,
        *,
        account_id: str,
        client_id: str,
        client_secret: str,
        auth_endpoint: str,
        timeout: float = 60,
        on_response: t.Callable[[requests.Response], None] | None = None,
    ) -> None:
        """Keep the credentials; the first request fetches the first token.

        Token requests wait at most ``timeout`` seconds each; ``on_response`` sees
        every answer of the token endpoint (to read Zoom's clock from it).
        """
        basic = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode("ascii")
        super().__init__(
            auth_endpoint=auth_endpoint,
            client_id=client_id,
            client_secret=client_secret,
            oauth_headers={"Authorization": f"Basic {basic}"},
        )
        self._account_id = account_id
        self._token_lock = threading.RLock()
        # One layer of retries, ours (see _request_token): the SDK's session also retries
        # https POSTs ten times inside each attempt, so a token endpoint that cannot be
        # reached took minutes to report.
        session = _TimeoutSession(timeout)
        if on_response is not None:
            session.hooks["response"].append(lambda response, *_, **__: on_response(response))
        replace_token_session(self, session)

    def authenticate_request(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        """Add the bearer token, renewing it first if needed (one renewal at a time across threads)."""
        with self._token_lock:
            if not self.is_token_valid():
                self.update_access_token()
            token = self.access_token
        request.headers["Authorization"] = f"Bearer {token}"
        return request

    @property
    def oauth_request_body(self) -> dict[str, str]:
        """Return the form body of Zoom's account-credentials grant."""
        return {"grant_type": "account_credentials", "account_id": self._account_id}

    def is_token_valid(self) -> bool:
        """Say whether the token will outlive the margin before its expiry."""
        if self.access_token is None or self.last_refreshed is None:
            return False
        if not self.expires_in:
            return True
        margin = min(EARLY_REFRESH_SECONDS, self.expires_in / 10)
        age = (dt.datetime.now(dt.timezone.utc) - self.last_refreshed).total_seconds()
        return age < self.expires_in - margin

    def invalidate(self, refused: str | None = None) -> None:
        """Forget the token Zoom ``refused`` (None: whichever it is), so the next request asks for a new one.

        Several threads meet the same revocation at once (the workers, a list read in the
        background): only the first forgets the token; the others' retries find the one
        it renewed, instead of each asking for another.
        """
        with self._token_lock:
            if refused is None or refused == self.access_token:
                self.access_token = None
                self.last_refreshed = None

    def update_access_token(self) -> None:
        """Get a token, retrying transient failures (:data:`TOKEN_RETRIES`), else fail with one clear line."""
        what = f"POST {urlsplit(self.auth_endpoint).path}"
        try:
            retries.call(self._request_token, TOKEN_RETRIES, what, self.logger)
        except (requests.RequestException, _TokenServerError) as exc:
            msg = f"could not reach Zoom's token endpoint {self.auth_endpoint}: {exc}"
            raise AuthError(msg) from None
        except (KeyError, ValueError):
            msg = f"Zoom's token endpoint {self.auth_endpoint} answered without an access token"
            raise AuthError(msg) from None

    def _request_token(self) -> None:
        """Ask for a token once (the SDK's request), naming a connection failure without the URL."""
        try:
            super().update_access_token()
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise type(exc)(type(exc).__name__) from None  # the original names the full URL

    def handle_error(self, *, content: str, status_code: int | None) -> t.NoReturn:
        """Raise one line that says why Zoom refused the credentials.

        The SDK's default logs the response and raises a generic RuntimeError; Zoom's
        body (``{"reason", "error"}``) never echoes the secret, so it is quoted.
        """
        if status_code is None or status_code >= HTTPStatus.INTERNAL_SERVER_ERROR:
            raise _TokenServerError(f"HTTP {status_code or 'error'}")
        error, reason = _token_error(content)
        if error == "invalid_client":
            msg = "Zoom rejected the client credentials (invalid_client): check client_id and client_secret"
        elif error:
            msg = f"Zoom refused an access token ({error}): {reason or 'no reason given'}"
            if "account" in reason.lower():
                msg += ": check account_id"
        else:
            msg = f"Zoom's token endpoint answered HTTP {status_code or 'error'}"
        raise AuthError(msg)


class StaticTokenAuthenticator(BearerTokenAuthenticator):
    """Sends an access token obtained elsewhere (the ``access_token`` setting), as it is.

    For user-level OAuth apps, whose tokens the tap cannot ask for. It cannot
    renew the token either: when Zoom refuses it, the run ends with a line that
    says so instead of retrying.
    """

    def __init__(self, token: str) -> None:
        """Send ``token`` with every request."""
        super().__init__(token=token)

    def update_access_token(self) -> None:
        """Do nothing: the token comes from the settings."""

    def invalidate(self, refused: str | None = None) -> t.NoReturn:  # noqa: ARG002
        """Fail: Zoom refused the token, and the tap has no way to get another."""
        msg = (
            "Zoom refused the access_token setting (expired or revoked?): a token obtained elsewhere "
            "cannot be renewed by the tap; supply a fresh one, or use account_id, client_id and client_secret"
        )
        raise AuthError(msg)


def _token_error(content: str) -> tuple[str, str]:
    """Return ``(error, reason)`` from a token endpoint error body, or empty strings."""
    try:
        body = json.loads(content)
    except ValueError:
        return "", ""
    if not isinstance(body, dict):
        return "", ""
    return str(body.get("error") or ""), str(body.get("reason") or "")
