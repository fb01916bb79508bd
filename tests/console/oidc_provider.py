"""A tiny OpenID Connect provider (authorization code + PKCE S256, RS256 id tokens) for tests."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI, Form, HTTPException, Request
from fastapi.responses import RedirectResponse

CLIENT_ID = "bokvar-console"
CLIENT_SECRET = "console-client-secret"


@dataclass
class Provider:
    """The provider's state: the claims it will issue and the codes it handed out."""

    claims: dict[str, Any] = field(default_factory=dict)
    codes: dict[str, dict[str, str]] = field(default_factory=dict)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    issuer: str = ""
    key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def build_app(idp: Provider) -> FastAPI:
    """Return the provider's ASGI app (discovery, authorize, token, JWKS)."""
    app = FastAPI()

    @app.get("/.well-known/openid-configuration")
    async def discovery() -> dict[str, Any]:
        return {
            "issuer": idp.issuer,
            "authorization_endpoint": f"{idp.issuer}/authorize",
            "token_endpoint": f"{idp.issuer}/token",
            "jwks_uri": f"{idp.issuer}/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256"],
        }

    @app.get("/authorize")
    async def authorize(request: Request) -> RedirectResponse:
        q = request.query_params
        if q.get("client_id") != CLIENT_ID or q.get("code_challenge_method") != "S256":
            raise HTTPException(400, "client or PKCE method")
        code = secrets.token_urlsafe(16)
        idp.codes[code] = {
            "challenge": q["code_challenge"],
            "redirect_uri": q["redirect_uri"],
            "nonce": q.get("nonce", ""),
        }
        query = urlencode({"code": code, "state": q["state"]})
        return RedirectResponse(f"{q['redirect_uri']}?{query}", status_code=302)

    @app.post("/token")
    async def token(
        request: Request,
        code: str = Form(),
        code_verifier: str = Form(),
        redirect_uri: str = Form(),
    ) -> dict[str, Any]:
        form = {k: str(v) for k, v in (await request.form()).items()}
        idp.token_requests.append(form)
        grant = idp.codes.pop(code, None)
        if grant is None or grant["redirect_uri"] != redirect_uri:
            raise HTTPException(400, "invalid_grant")
        if _s256(code_verifier) != grant["challenge"]:
            raise HTTPException(400, "PKCE verification failed")
        now = int(time.time())
        body = {
            "iss": idp.issuer,
            "aud": CLIENT_ID,
            "iat": now,
            "exp": now + 300,
            "nonce": grant["nonce"],
            **idp.claims,
        }
        id_token = jwt.encode(body, idp.key, algorithm="RS256", headers={"kid": "k1"})
        return {
            "access_token": "at",
            "token_type": "Bearer",
            "expires_in": 300,
            "id_token": id_token,
        }

    @app.get("/jwks")
    async def jwks() -> dict[str, Any]:
        public = jwt.algorithms.RSAAlgorithm.to_jwk(idp.key.public_key(), as_dict=True)
        return {"keys": [{**public, "kid": "k1", "use": "sig", "alg": "RS256"}]}

    return app
