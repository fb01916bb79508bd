"""`bokvar token`: mint a bearer JWT for the cases API, signed with BOKVAR_CASES_JWT_SECRET,
or (`--service`) print the service token of the rules and notifier APIs.

For development and tests: in production an identity provider issues the JWTs with the
same claims (`sub`, `role`, `org`, `municipality`, `exp`).
"""

from __future__ import annotations

import argparse
from datetime import datetime, timedelta
from typing import Any

from services.cases.config import CasesSettings
from services.cases.engine import ROLES
from shared.auth import encode_token
from shared.clock import clock_from_settings
from shared.config import CommonSettings

NEEDS_ORG = ("landlord_staff", "bosocial")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--role", choices=ROLES, help="role claim of a cases JWT")
    which.add_argument(
        "--service",
        action="store_true",
        help="print the service token instead (BOKVAR_SERVICE_TOKEN: rules and notifier APIs)",
    )
    parser.add_argument(
        "--org", default=None, help="organisation id (required for landlord_staff, bosocial)"
    )
    parser.add_argument(
        "--municipality",
        default=None,
        help="municipality code, e.g. 0180 (required for social_services)",
    )
    parser.add_argument("--sub", default="dev-user", help="subject: who the token names")
    parser.add_argument(
        "--ttl-hours",
        type=float,
        default=8.0,
        help="hours until it expires, on the services' clock (default: 8; raise it against "
        "`bokvar up --clock-speed`, whose clock runs faster)",
    )


def mint(
    settings: CasesSettings,
    *,
    role: str,
    sub: str,
    org: str | None = None,
    municipality: str | None = None,
    now: datetime,
    ttl: timedelta = timedelta(hours=8),
) -> str:
    """Return a signed JWT the cases API accepts for these claims."""
    claims: dict[str, Any] = {"sub": sub, "role": role}
    if org is not None:
        claims["org"] = org
    if municipality is not None:
        claims["municipality"] = municipality
    return encode_token(claims, settings.cases_jwt_secret.get_secret_value(), now=now, ttl=ttl)


def run(args: argparse.Namespace) -> int:
    if args.service:
        print(CommonSettings().service_token.get_secret_value())
        return 0
    if args.role in NEEDS_ORG and not args.org:
        raise SystemExit(f"bokvar token: --org is required for role {args.role}")
    if args.role == "social_services" and not args.municipality:
        raise SystemExit("bokvar token: --municipality is required for role social_services")
    settings = CasesSettings()
    # the services' clock (BOKVAR_CLOCK_*), so a token for a simulated past is not "from the future"
    clock = clock_from_settings(settings.clock_start, settings.clock_epoch, settings.clock_speed)
    token = mint(
        settings,
        role=args.role,
        sub=args.sub,
        org=args.org,
        municipality=args.municipality,
        now=clock.now(),
        ttl=timedelta(hours=args.ttl_hours),
    )
    print(token)
    return 0
