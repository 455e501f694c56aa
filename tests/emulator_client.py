"""A small client for the emulator in tests: token, GETs, admin calls."""

from __future__ import annotations

import typing as t

import requests

from tap_zoom_sms.emulator import Emulator


class EmulatorClient:
    """Talks to a running emulator as a Zoom app would."""

    def __init__(self, emulator: Emulator) -> None:
        self.em = emulator
        self.session = requests.Session()
        self._token: str | None = None

    def token(self) -> str:
        if self._token is None:
            config = self.em.config
            response = self.session.post(
                f"{self.em.url}/oauth/token",
                auth=(config.client_id, config.client_secret),
                data={"grant_type": "account_credentials", "account_id": config.account_id},
                timeout=10,
            )
            response.raise_for_status()
            self._token = response.json()["access_token"]
        return self._token

    def get(self, path: str, **params: t.Any) -> requests.Response:
        return self.session.get(
            f"{self.em.url}/v2{path}",
            params=params,
            headers={"Authorization": f"Bearer {self.token()}"},
            timeout=10,
        )

    def admin(self, path: str, **body: t.Any) -> t.Any:
        response = self.session.post(f"{self.em.url}/_admin/{path}", json=body, timeout=10)
        response.raise_for_status()
        return response.json()
