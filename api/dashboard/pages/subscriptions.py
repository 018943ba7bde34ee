"""Placeholder: filled in below."""

from __future__ import annotations

from api.dashboard.routes import Route

ROUTES: list[Route] = []
