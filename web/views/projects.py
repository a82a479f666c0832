"""Placeholder: this resource's views are being written."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("projects", __name__)
