"""Render Jinja2 pages with the language, the user, the CSRF token and the formatters."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from services.console.clients import Backends
from services.console.i18n import LANGUAGES, translator
from services.console.session import csrf_token, current_user
from shared.clock import STOCKHOLM
from shared.format import format_sek

TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")
LANG_COOKIE = "bokvar_lang"


def language(request: Request) -> str:
    """Return the page language: `?lang=` first, then the cookie, then Swedish."""
    wanted = request.query_params.get("lang") or request.cookies.get(LANG_COOKIE) or "sv"
    return wanted if wanted in LANGUAGES else "sv"


def local_time(value: str | datetime | None) -> str:
    """Format an instant as local Stockholm time `YYYY-MM-DD HH:MM`."""
    if value is None:
        return "-"
    instant = datetime.fromisoformat(value) if isinstance(value, str) else value
    return instant.astimezone(STOCKHOLM).strftime("%Y-%m-%d %H:%M")


def render(request: Request, template: str, *, status: int = 200, **ctx: Any) -> HTMLResponse:
    """Render a page; every template gets t, lang, user, csrf_token and the formatters."""
    lang = language(request)
    response = TEMPLATES.TemplateResponse(
        request,
        template,
        {
            "t": translator(lang),
            "lang": lang,
            "user": current_user(request),
            "csrf_token": csrf_token(request),
            "sek": format_sek,
            "local_time": local_time,
            **ctx,
        },
        status_code=status,
    )
    if request.query_params.get("lang") in LANGUAGES:
        response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, samesite="lax")
    return response


def backends(request: Request) -> Backends:
    """Return the app's service clients."""
    result: Backends = request.app.state.backends
    return result


Api = Annotated[Backends, Depends(backends)]
