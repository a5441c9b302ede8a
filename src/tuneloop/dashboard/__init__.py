"""The local web dashboard (``tuneloop ui``): a JSON API and pages drawn in the browser."""

from tuneloop.dashboard._app import create_app, page_html

__all__ = ["create_app", "page_html"]
