"""Signing in to the dashboard from the Flask test client, and posting its forms."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from werkzeug.test import TestResponse

from conftest import Kit

PASSWORD = "a long enough password"
TOKEN_RE = re.compile(r'name="csrf-token" content="([^"]+)"|name="csrf_token" value="([^"]+)"')


def csrf_token(page: TestResponse) -> str:
    """The CSRF token of a dashboard page (its meta tag or a form's hidden field)."""
    found = TOKEN_RE.search(page.get_data(as_text=True))
    assert found, "no CSRF token on the page"
    return found[1] or found[2]


def sign_in(kit: Kit, name: str = "ada", role: str = "admin", classes: Sequence[str] = ()) -> str:
    """Create the account (if new) and sign it in on ``kit.client``; the CSRF token."""
    if kit.services.store.user(name) is None:
        kit.services.accounts.add(name, role, PASSWORD, classes)
    token = csrf_token(kit.client.get("/login"))
    response = kit.client.post(
        "/login", data={"username": name, "password": PASSWORD, "csrf_token": token}
    )
    assert response.status_code == 303, response.get_data(as_text=True)[:300]
    return csrf_token(kit.client.get("/"))


def post_form(kit: Kit, url: str, token: str, **fields: Any) -> TestResponse:
    """POST a dashboard form with its CSRF token, as the browser would."""
    return kit.client.post(url, data={"csrf_token": token, **fields})
