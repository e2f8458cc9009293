"""``GET /docs``: Swagger UI from files installed with the service, no CDN.

The viewer comes from swagger-ui-bundle-v2 (Swagger UI's own dist folder, as a Python
package), so the page renders where the internet is out of reach. Everything it loads is
served from ``/docs/static/``: the page has no inline script, and its Content-Security-
Policy allows nothing from elsewhere (Swagger UI sets inline styles, hence
``style-src 'unsafe-inline'``; its online validator is turned off).
"""

from __future__ import annotations

from html import escape
from pathlib import Path

from quart import Blueprint, Response, current_app, send_from_directory
from quart_schema import hide
from swagger_ui_bundle import swagger_ui_path

bp = Blueprint("apidocs", __name__)

HERE = Path(__file__).parent
#: Swagger UI's files, then ours (the initialiser), each served from /docs/static/.
ASSETS = {
    "swagger-ui.css": Path(str(swagger_ui_path)),
    "swagger-ui-bundle.js": Path(str(swagger_ui_path)),
    "favicon-32x32.png": Path(str(swagger_ui_path)),
    "init.js": HERE,
}
CSP = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "font-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)
PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{title}</title>
  <link rel="stylesheet" href="/docs/static/swagger-ui.css">
  <link rel="icon" type="image/png" href="/docs/static/favicon-32x32.png">
</head>
<body>
  <div id="swagger-ui" data-openapi-url="{openapi}"></div>
  <script src="/docs/static/swagger-ui-bundle.js"></script>
  <script src="/docs/static/init.js"></script>
</body>
</html>
"""


@bp.get("/docs")
@hide
async def docs() -> Response:
    schema = current_app.extensions["QUART_SCHEMA"]
    title = escape(str(schema.info.title if schema.info else "API"))
    html = PAGE.format(title=title, openapi=escape(schema.openapi_path or "/openapi.json"))
    response = Response(html, content_type="text/html; charset=utf-8")
    response.headers["Content-Security-Policy"] = CSP
    return response


@bp.get("/docs/static/<name>")
@hide
async def static(name: str) -> Response:
    folder = ASSETS.get(name)
    if folder is None:
        from werkzeug.exceptions import NotFound

        raise NotFound()
    response = await send_from_directory(folder, name)
    response.cache_control.public = True
    response.cache_control.max_age = 86400
    return response
