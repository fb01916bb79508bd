"""Routers of the cases API."""
