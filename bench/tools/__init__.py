"""Diagnostics of orchestratord's performance: each answers one question (README.md here)."""
