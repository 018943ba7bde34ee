"""The dashboard's pages, one module per area; each exports `ROUTES`."""

from __future__ import annotations
