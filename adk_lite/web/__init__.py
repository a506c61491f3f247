"""``adk-lite serve``: a local, read-only web browser on an adk_lite database (the
``web`` extra: Starlette, Jinja2, uvicorn).

Pages are rendered on the server (Jinja2 templates with autoescaping, charts as
inline SVG); there is no JavaScript and nothing is fetched from elsewhere, so the
browser works offline. Every page has a JSON twin under ``/api/``. See
:func:`adk_lite.web.app.make_app` for the routes and :func:`adk_lite.web.app.serve`
for running it.
"""

try:
    import jinja2  # noqa: F401 - only to say which extra is missing, in one line
    import starlette  # noqa: F401
except ImportError as _missing:
    from ..errors import install_hint as _hint

    raise ImportError(f"adk_lite.web needs the web extra: {_hint('web')} ({_missing})", name=__name__) from None

from .app import check_bind, make_app, serve  # noqa: E402

__all__ = ["check_bind", "make_app", "serve"]
