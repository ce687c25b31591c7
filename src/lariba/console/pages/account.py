"""Your account: profile, password, API keys and two-factor authentication."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Any

import segno
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup

from lariba.console.api import ApiProblem
from lariba.console.forms import form_values
from lariba.console.rendering import redirect, render
from lariba.console.session import SignedIn, Visitor, clear_session_cookie

router = APIRouter()

# Messages shown after a redirect, chosen by a fixed key: the URL never carries text.
NOTICES = {
    "profile": "Your profile was saved.",
    "key_revoked": "The API key was revoked: it no longer works.",
    "mfa_off": "Two-factor authentication is off: you sign in with your password alone.",
}
ROLE_LIMITS = [("admin", "admin"), ("member", "member"), ("viewer", "viewer")]
# The form's field for each field of the API call behind it (several forms share the page).
KEY_FIELDS = {
    "name": "key_name",
    "expires_at": "key_expires",
    "project_id": "key_project",
    "role": "key_role",
}
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def form_errors(problem: ApiProblem, fields: Mapping[str, str], section: str) -> dict[str, str]:
    """The API's field errors under the form's own field names; a problem naming no field
    of the form is shown for the whole ``section``."""
    errors = {
        fields[name]: message for name, message in problem.field_errors().items() if name in fields
    }
    return errors or {section: problem.detail}


def qr_code(uri: str) -> Markup:
    """The provisioning URI as an inline SVG QR code, for authenticator apps to scan."""
    return Markup(segno.make_qr(uri).svg_inline(scale=4, light="#fff"))  # noqa: S704 - segno's SVG


async def _account(
    request: Request, visitor: Visitor, *, status_code: int = 200, **context: Any
) -> HTMLResponse:
    mfa = await visitor.api.get("/v1/me/mfa")
    keys = await visitor.api.get(
        "/v1/me/api-keys", limit=50, cursor=request.query_params.get("cursor")
    )
    projects = (await visitor.api.get("/v1/projects", limit=100))["items"]
    return render(
        request,
        "account/index.html",
        visitor=visitor,
        mfa=mfa,
        keys=keys,
        projects=projects,
        project_names={p["id"]: p["name"] for p in projects},
        role_limits=ROLE_LIMITS,
        notice=NOTICES.get(request.query_params.get("notice", "")),
        status_code=status_code,
        **context,
    )


@router.get("/account", response_class=HTMLResponse)
async def account(request: Request, visitor: SignedIn) -> Response:
    return await _account(request, visitor)


@router.post("/account/profile")
async def update_profile(request: Request, visitor: SignedIn) -> Response:
    values = await form_values(request)
    try:
        await visitor.api.patch("/v1/me", {"display_name": values.get("display_name") or None})
    except ApiProblem as problem:
        return await _account(
            request,
            visitor,
            status_code=problem.status,
            form=values,
            errors=form_errors(problem, {"display_name": "display_name"}, "profile"),
        )
    return redirect("/account?notice=profile")


@router.post("/account/password")
async def change_password(request: Request, visitor: SignedIn) -> Response:
    values = await form_values(request)
    try:
        if values.get("new_password") != values.get("repeat_password"):
            message = "does not match the new password"
            raise ApiProblem(
                status=422,
                code="validation_failed",
                detail=f"repeat_password: {message}",
                errors=[{"field": "repeat_password", "message": message}],
            )
        await visitor.api.post(
            "/v1/me/password",
            {
                "current_password": values.get("current_password", ""),
                "new_password": values.get("new_password", ""),
            },
        )
    except ApiProblem as problem:
        fields = {name: name for name in ("current_password", "new_password", "repeat_password")}
        return await _account(
            request,
            visitor,
            status_code=problem.status,
            errors=form_errors(problem, fields, "password"),
        )
    # The API ended every session of the account, this one included.
    page = redirect("/account/password-changed")
    clear_session_cookie(request, page)
    return page


@router.get("/account/password-changed", response_class=HTMLResponse)
async def password_changed(request: Request) -> Response:
    return render(request, "account/password_changed.html", form={"next": "/account"})


@router.post("/account/api-keys")
async def create_api_key(request: Request, visitor: SignedIn) -> Response:
    values = await form_values(request)
    body: dict[str, Any] = {"name": values.get("key_name", "")}
    if expires := values.get("key_expires"):
        # A date from the form: the key stops working as that day starts (UTC).
        body["expires_at"] = f"{expires}T00:00:00Z" if _DATE.match(expires) else expires
    if values.get("key_project"):
        body["project_id"] = values["key_project"]
    if values.get("key_role"):
        body["role"] = values["key_role"]
    try:
        created = await visitor.api.post("/v1/me/api-keys", body)
    except ApiProblem as problem:
        return await _account(
            request,
            visitor,
            status_code=problem.status,
            form=values,
            errors=form_errors(problem, KEY_FIELDS, "keys"),
        )
    return await _account(request, visitor, status_code=201, created_key=created)


@router.post("/account/api-keys/{key_id}/revoke")
async def revoke_api_key(request: Request, visitor: SignedIn, key_id: uuid.UUID) -> Response:
    await visitor.api.delete(f"/v1/me/api-keys/{key_id}")
    return redirect("/account?notice=key_revoked#api-keys")


def _enrolment_page(
    request: Request,
    visitor: Visitor,
    enrolment: Mapping[str, str],
    *,
    status_code: int = 200,
    errors: dict[str, str] | None = None,
) -> HTMLResponse:
    return render(
        request,
        "account/mfa_enrol.html",
        visitor=visitor,
        enrolment=enrolment,
        qr=qr_code(enrolment["otpauth_uri"]),
        status_code=status_code,
        errors=errors or {},
    )


@router.post("/account/mfa")
async def start_mfa(request: Request, visitor: SignedIn) -> Response:
    values = await form_values(request)
    try:
        enrolment = await visitor.api.post(
            "/v1/me/mfa", {"password": values.get("mfa_password", "")}
        )
    except ApiProblem as problem:
        return await _account(
            request,
            visitor,
            status_code=problem.status,
            errors=form_errors(problem, {"password": "mfa_password"}, "mfa"),
        )
    return _enrolment_page(request, visitor, enrolment)


@router.post("/account/mfa/confirm")
async def confirm_mfa(request: Request, visitor: SignedIn) -> Response:
    values = await form_values(request)
    try:
        codes = await visitor.api.post("/v1/me/mfa/confirm", {"code": values.get("code", "")})
    except ApiProblem as problem:
        errors = form_errors(problem, {"code": "code"}, "mfa")
        if "code" in errors and values.get("secret") and values.get("otpauth_uri"):
            # The secret the person is enrolling came back with the form: show it again.
            enrolment = {"secret": values["secret"], "otpauth_uri": values["otpauth_uri"]}
            return _enrolment_page(
                request, visitor, enrolment, status_code=problem.status, errors=errors
            )
        return await _account(request, visitor, status_code=problem.status, errors=errors)
    return render(
        request,
        "account/recovery_codes.html",
        visitor=visitor,
        codes=codes["recovery_codes"],
        enabled_now=True,
    )


@router.post("/account/mfa/off")
async def turn_off_mfa(request: Request, visitor: SignedIn) -> Response:
    values = await form_values(request)
    try:
        await visitor.api.call(
            "DELETE",
            "/v1/me/mfa",
            json={"password": values.get("off_password", ""), "code": values.get("off_code", "")},
        )
    except ApiProblem as problem:
        fields = {"password": "off_password", "code": "off_code"}
        return await _account(
            request, visitor, status_code=problem.status, errors=form_errors(problem, fields, "mfa")
        )
    return redirect("/account?notice=mfa_off#two-factor")


@router.post("/account/mfa/recovery-codes")
async def regenerate_recovery_codes(request: Request, visitor: SignedIn) -> Response:
    values = await form_values(request)
    try:
        codes = await visitor.api.post(
            "/v1/me/mfa/recovery-codes", {"code": values.get("regen_code", "")}
        )
    except ApiProblem as problem:
        return await _account(
            request,
            visitor,
            status_code=problem.status,
            errors=form_errors(problem, {"code": "regen_code"}, "mfa"),
        )
    return render(
        request,
        "account/recovery_codes.html",
        visitor=visitor,
        codes=codes["recovery_codes"],
        enabled_now=False,
    )
