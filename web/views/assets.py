"""Placeholder: this resource's views are being written."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("assets", __name__)
