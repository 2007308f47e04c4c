"""Placeholder: being written."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from ...app import Services
from .common import render


def register(routes: Blueprint, services: Services) -> None:
    @routes.get("/student/<name>")
    def student_page(name: str) -> Any:
        return render("error.html", name, message="being written")

    @routes.get("/class/<name>")
    def class_page(name: str) -> Any:
        return render("error.html", name, message="being written")
