"""Signing up, signing in (with a second factor) and signing out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from lariba.console.api import ApiProblem, ConsoleApi
from lariba.console.forms import form_values
from lariba.console.rendering import redirect, render
from lariba.console.session import (
    LoginRequired,
    SignedIn,
    check_origin,
    clear_session_cookie,
    signed_in,
    start_console_session,
)

router = APIRouter()

Next = Annotated[str, Query(alias="next")]


def _safe_next(target: str | None) -> str:
    """Only a path on this site: never an open redirect to another one."""
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return "/projects"


async def _log_in(request: Request, values: dict[str, str]) -> Response:
    api = ConsoleApi(request, token=None)
    response = await api.call(
        "POST",
        "/v1/auth/token",
        data={
            "username": values.get("email", ""),
            "password": values.get("password", ""),
            **({"otp": values["otp"]} if values.get("otp") else {}),
        },
    )
    page = redirect(_safe_next(values.get("next")))
    await start_console_session(request, page, response.json()["access_token"])
    return page


@router.get("/", include_in_schema=False)
async def home(request: Request) -> Response:
    try:
        await signed_in(request)
    except (LoginRequired, ApiProblem):
        return redirect("/login")
    return redirect("/projects")


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request, next_: Next = "/projects") -> HTMLResponse:
    return render(request, "auth/login.html", form={"next": _safe_next(next_)})


@router.post("/login")
async def login(request: Request) -> Response:
    check_origin(request)
    values = await form_values(request)
    try:
        return await _log_in(request, values)
    except ApiProblem as problem:
        needs_code = problem.code in {"mfa_required", "invalid_mfa_code"}
        errors = {"otp": problem.detail} if needs_code else {"form": problem.detail}
        if problem.status == 422:
            errors = {"form": "Enter your e-mail and password."}
        return render(
            request,
            "auth/login.html",
            status_code=problem.status,
            form={**values, "password": "", "otp": ""},
            errors=errors,
            needs_code=needs_code,
            retry_after=problem.extra.get("retry_after"),
        )


@router.get("/signup", response_class=HTMLResponse)
async def signup_form(request: Request, next_: Next = "/projects") -> HTMLResponse:
    return render(request, "auth/signup.html", form={"next": _safe_next(next_)})


@router.post("/signup")
async def signup(request: Request) -> Response:
    check_origin(request)
    values = await form_values(request)
    body = {"email": values.get("email", ""), "password": values.get("password", "")}
    if values.get("display_name"):
        body["display_name"] = values["display_name"]
    try:
        await ConsoleApi(request, token=None).post("/v1/auth/signup", body)
        return await _log_in(request, values)
    except ApiProblem as problem:
        errors = problem.field_errors() or {"form": problem.detail}
        if problem.code == "email_taken" or problem.status == 409:
            errors = {"email": problem.detail}
        return render(
            request,
            "auth/signup.html",
            status_code=problem.status,
            form={**values, "password": ""},
            errors=errors,
        )


@router.post("/logout")
async def logout(request: Request, visitor: SignedIn) -> Response:
    try:
        await visitor.api.post("/v1/auth/logout")
    except ApiProblem as problem:
        if problem.status != 401:
            raise
    page = redirect("/login")
    clear_session_cookie(request, page)
    return page
