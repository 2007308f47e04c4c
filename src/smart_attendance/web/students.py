"""The students registry's routes: list, add, change, photos. Every route needs the
``X-API-KEY`` header (checked by ``create_app``); errors are the JSON of ``web.ERROR_STATUS``."""

from __future__ import annotations

from flask import Blueprint

from ..app import Services


def blueprint(services: Services) -> Blueprint:
    routes = Blueprint("students", __name__)
    return routes
