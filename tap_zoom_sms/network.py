"""The network as the environment sets it up: the CA bundle and proxies every request uses.

requests reads ``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE`` and the proxy variables only in
``Session.request``. The SDK's streams and the downloads send prepared requests with
``Session.send``, which verifies against certifi's public CAs alone: behind a proxy or
gateway that inspects TLS (it re-signs every certificate with the company's CA) the
token request worked and every API request failed. :class:`EnvironmentSession` gives
every request, whichever way it is sent, the same settings.

``SSL_CERT_FILE`` is OpenSSL's own variable, which curl and Python's ``ssl`` read;
requests ignores it (it hands certifi's bundle to OpenSSL). The tap reads it after the
two variables requests reads, so a machine set up for OpenSSL works as it is.
Verification is never turned off: a CA bundle replaces the public CAs, as in requests.
"""

from __future__ import annotations

import ipaddress
import os
import ssl
import typing as t
from urllib.parse import urlsplit

import requests
from requests.utils import resolve_proxies

from tap_zoom_sms.errors import ZoomTapError

#: Where a CA bundle is looked for, first set (and not empty) wins: requests' two, then OpenSSL's.
CA_BUNDLE_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE")
#: Host names that are this machine, besides the loopback addresses.
LOOPBACK_NAMES = ("localhost",)


class TLSError(ZoomTapError):
    """A server's certificate cannot be verified, or the CA bundle the environment names is missing.

    Not retried: the next attempt would meet the same certificate.
    """


def ca_bundle(environ: t.Mapping[str, str] = os.environ) -> str | bool:
    """Return the CA bundle the environment names (a file or a folder), or True for requests' own.

    A name that does not exist fails at once with one line: requests would raise it at
    every request, as an OSError that names no variable.
    """
    for name in CA_BUNDLE_VARIABLES:
        if value := environ.get(name):
            if not os.path.exists(value):
                msg = f"{name} names the CA bundle {value}, which does not exist"
                raise TLSError(msg)
            return value
    return True


def plain_http_warning(setting: str, url: str) -> str | None:
    """Return a warning when ``url`` is plain HTTP to another machine (the token would travel unencrypted)."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "http" or _is_loopback(parts.hostname or ""):
        return None
    return (
        f"{setting} {parts.scheme}://{parts.netloc} is plain HTTP: the access token and the data "
        "travel unencrypted; use https:// unless this is a test server"
    )


def _is_loopback(host: str) -> bool:
    """Say whether ``host`` is this machine (127.0.0.0/8, ::1 or localhost)."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class EnvironmentSession(requests.Session):
    """A session whose every send uses the CA bundle and the proxies the environment names.

    Both are read once per session (proxies once per scheme and host): requests reads
    them again for every request, scanning the whole environment, about 1.7 ms a
    request here, more than the rest of the client's work.
    """

    def __init__(self) -> None:
        """Read the environment at the first request, so a missing CA bundle fails there with one line."""
        super().__init__()
        self._proxies: dict[str, dict[str, str]] = {}
        self._ca_bundle: str | bool | None = None

    def send(self, request: requests.PreparedRequest, **kwargs: t.Any) -> requests.Response:
        """Send with the environment's CA bundle and proxies; a certificate that fails verification is a TLSError."""
        verify = self._verify()  # first, so a missing CA bundle fails here, whoever merged the settings
        if kwargs.get("verify") is None or kwargs["verify"] is True:
            kwargs["verify"] = verify
        kwargs.setdefault("proxies", self._proxies_for(request.url or ""))
        try:
            return super().send(request, **kwargs)
        except requests.exceptions.SSLError as exc:
            failure = _verification_failure(exc)
            if failure is None:
                raise  # a broken handshake, not a certificate: retried like any dropped connection
            raise TLSError(_describe(request.url or "", failure, kwargs["verify"])) from None

    def _verify(self) -> str | bool:
        """Return what ``verify`` is for this session's requests: the environment's CA bundle, or True."""
        if self._ca_bundle is None:
            self._ca_bundle = ca_bundle() if self.trust_env else True
        return self._ca_bundle

    def _proxies_for(self, url: str) -> dict[str, str]:
        """Return the proxies the environment names for ``url``'s scheme and host (read once for each)."""
        parts = urlsplit(url)
        key = f"{parts.scheme}://{parts.netloc}"
        if key not in self._proxies:
            request = requests.Request("GET", url).prepare()
            self._proxies[key] = resolve_proxies(request, dict(self.proxies), self.trust_env)
        return self._proxies[key]


def _verification_failure(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """Find the certificate verification failure inside what requests raised, if that is what it is.

    requests wraps urllib3's errors, which wrap ssl's: the cause is found through
    ``args``, ``reason`` and the exception chain.
    """
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return current
        linked = (current.__cause__, current.__context__, getattr(current, "reason", None), *current.args)
        todo += [item for item in linked if isinstance(item, BaseException)]
    return None


def _describe(url: str, failure: ssl.SSLCertVerificationError, verify: str | bool) -> str:
    """Say whose certificate failed, why, and against which CAs (never the URL's path or query)."""
    parts = urlsplit(url)
    against = f"the CA bundle {verify}" if isinstance(verify, str) else "the public CAs (certifi)"
    return (
        f"the TLS certificate of {parts.scheme}://{parts.netloc} could not be verified against {against}: "
        f"{failure.verify_message or failure.reason}. If a proxy or gateway on this network inspects TLS, "
        "set REQUESTS_CA_BUNDLE to its CA certificate (see docs/proxy.md)"
    )
