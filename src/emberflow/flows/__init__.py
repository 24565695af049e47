"""Declarative flows: units, their setup parameters, links and queue policies in YAML (issue 3)."""
