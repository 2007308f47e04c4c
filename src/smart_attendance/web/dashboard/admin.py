"""Placeholder: being written."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from ...app import Services
from .common import render


def register(routes: Blueprint, services: Services) -> None:
    @routes.get("/admin")
    def admin() -> Any:
        return render("error.html", "admin", message="being written")
