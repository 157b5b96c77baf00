"""The results site: `kit site` writes every run's tables, figures, checks, provenance and bundle as a static
website (kit.site.build), from the read side's data (kit.site.views) and kit.plot's figures (kit.site.figures),
with Jinja2 templates (templates/) and one style sheet (assets/)."""
from kit.site.build import build

__all__ = ["build"]
