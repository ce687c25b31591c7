"""Buckets: the list and create form, the detail page with its object browser, and the
JSON endpoints the upload script and the "Copy link" buttons use. Object bytes never pass
through these handlers: downloads and uploads go to presigned URLs."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from lariba.console.api import ApiProblem
from lariba.console.forms import form_values, labels_from_text, optional
from lariba.console.rendering import InProject, ProjectPage, redirect, render

router = APIRouter()

# Objects can be listed, uploaded and downloaded only in these statuses (the API says so).
USABLE = ("available", "modifying")
# Files larger than this go up in parts of this size; S3 wants parts of 5 MiB at least.
PART_BYTES = 8 * 1024 * 1024
OBJECTS_PER_PAGE = 100
BUCKETS_PER_PAGE = 25
_BUCKETS = "/projects/{project_id}/buckets"
_BUCKET = _BUCKETS + "/{bucket_id}"


def _bucket_path(page: ProjectPage, bucket_id: uuid.UUID, suffix: str = "") -> str:
    return page.path(f"/buckets/{bucket_id}{suffix}")


def _objects_path(page: ProjectPage, bucket_id: uuid.UUID, suffix: str = "") -> str:
    return _bucket_path(page, bucket_id, f"/objects{suffix}")


def _problem_json(problem: ApiProblem) -> JSONResponse:
    """The API's problem, as the API sent it, for the page's script."""
    body = {
        **problem.extra,
        "status": problem.status,
        "code": problem.code,
        "detail": problem.detail,
        "errors": problem.errors,
    }
    return JSONResponse(body, status_code=problem.status, media_type="application/problem+json")


def _crumbs(prefix: str) -> list[tuple[str, str]]:
    """(name, prefix) of each folder on the way to ``prefix``: ``a/b/`` gives
    ``[("a", "a/"), ("b", "a/b/")]``."""
    crumbs: list[tuple[str, str]] = []
    walked = ""
    for part in prefix.split("/")[:-1]:
        walked += f"{part}/"
        crumbs.append((part, walked))
    return crumbs


# The list and the create form


async def _list_page(
    request: Request,
    page: ProjectPage,
    *,
    cursor: str | None,
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    listing = await page.api.get(page.path("/buckets"), cursor=cursor, limit=BUCKETS_PER_PAGE)
    regions = (await page.api.get("/v1/catalog/regions"))["items"]
    return render(
        request,
        "buckets/list.html",
        page=page,
        listing=listing,
        regions=regions,
        form=form or {},
        errors=errors or {},
        status_code=status_code,
    )


@router.get(_BUCKETS, response_class=HTMLResponse)
async def buckets(request: Request, page: InProject, cursor: str | None = None) -> Response:
    return await _list_page(request, page, cursor=cursor)


@router.post(_BUCKETS)
async def create_bucket(request: Request, page: InProject) -> Response:
    values = await form_values(request)
    body: dict[str, Any] = {
        "name": values.get("name", ""),
        "versioning": values.get("versioning") == "on",
        "labels": labels_from_text(values.get("labels", "")),
        **optional(values, "region"),
    }
    try:
        operation = await page.api.post(page.path("/buckets"), body)
    except ApiProblem as problem:
        if problem.status in (401, 404):
            raise
        return await _list_page(
            request,
            page,
            cursor=None,
            form=values,
            errors=problem.field_errors() or {"form": problem.detail},
            status_code=problem.status,
        )
    return redirect(f"/projects/{page.id}/buckets/{operation['resource']['id']}")


# The detail page and its object browser


async def _detail_page(
    request: Request,
    page: ProjectPage,
    bucket_id: uuid.UUID,
    *,
    prefix: str = "",
    cursor: str | None = None,
    problem: ApiProblem | None = None,
    status_code: int = 200,
) -> Response:
    bucket = await page.api.get(_bucket_path(page, bucket_id))
    listing = None
    if bucket["status"] in USABLE:
        try:
            listing = await page.api.get(
                _objects_path(page, bucket_id),
                prefix=prefix,
                delimiter="/",
                cursor=cursor,
                limit=OBJECTS_PER_PAGE,
            )
        except ApiProblem as refused:
            # Its status changed since: the page shows the bucket without its objects.
            if refused.code != "invalid_state":
                raise
    return render(
        request,
        "buckets/detail.html",
        page=page,
        bucket=bucket,
        listing=listing,
        prefix=prefix,
        crumbs=_crumbs(prefix),
        usable=listing is not None,
        part_bytes=PART_BYTES,
        problem=problem,
        status_code=status_code,
    )


@router.get(_BUCKET, response_class=HTMLResponse)
async def bucket(
    request: Request,
    page: InProject,
    bucket_id: uuid.UUID,
    prefix: str = "",
    cursor: str | None = None,
) -> Response:
    return await _detail_page(request, page, bucket_id, prefix=prefix, cursor=cursor)


async def _change(
    request: Request,
    page: ProjectPage,
    bucket_id: uuid.UUID,
    *,
    method: str,
    path: str,
    then: str,
    json: Any = None,
    params: dict[str, Any] | None = None,
    prefix: str = "",
) -> Response:
    """Makes one change through the API, then goes to ``then``; a refusal the person can
    act on is shown on the bucket's page."""
    try:
        await page.api.call(method, path, json=json, params=params)
    except ApiProblem as problem:
        if problem.status in (401, 403, 404):
            raise
        return await _detail_page(
            request,
            page,
            bucket_id,
            prefix=prefix,
            problem=problem,
            status_code=problem.status,
        )
    return redirect(then)


@router.post(_BUCKET + "/versioning")
async def set_versioning(request: Request, page: InProject, bucket_id: uuid.UUID) -> Response:
    values = await form_values(request)
    return await _change(
        request,
        page,
        bucket_id,
        method="PUT",
        path=_bucket_path(page, bucket_id, "/versioning"),
        json={"enabled": values.get("enabled") == "on"},
        then=f"/projects/{page.id}/buckets/{bucket_id}",
    )


@router.post(_BUCKET + "/delete")
async def delete_bucket(request: Request, page: InProject, bucket_id: uuid.UUID) -> Response:
    values = await form_values(request)
    return await _change(
        request,
        page,
        bucket_id,
        method="DELETE",
        path=_bucket_path(page, bucket_id),
        params={"force": "true" if values.get("force") == "on" else None},
        then=f"/projects/{page.id}/buckets",
    )


@router.post(_BUCKET + "/objects/delete")
async def delete_object(request: Request, page: InProject, bucket_id: uuid.UUID) -> Response:
    values = await form_values(request)
    prefix = values.get("prefix", "")
    back = f"/projects/{page.id}/buckets/{bucket_id}"
    return await _change(
        request,
        page,
        bucket_id,
        method="DELETE",
        path=_objects_path(page, bucket_id),
        params={"key": values.get("key", "")},
        then=f"{back}?{urlencode({'prefix': prefix})}" if prefix else back,
        prefix=prefix,
    )


# Downloads and links: presigned GET URLs


async def _presigned_get(page: ProjectPage, bucket_id: uuid.UUID, key: str) -> dict[str, Any]:
    result: dict[str, Any] = await page.api.post(
        _objects_path(page, bucket_id, "/presign"), {"key": key, "method": "GET"}
    )
    return result


@router.get(_BUCKET + "/download")
async def download(page: InProject, bucket_id: uuid.UUID, key: str) -> Response:
    """To the object's presigned URL: the browser fetches the bytes from the storage."""
    presigned = await _presigned_get(page, bucket_id, key)
    return redirect(presigned["url"])


@router.post(_BUCKET + "/link")
async def share_link(request: Request, page: InProject, bucket_id: uuid.UUID) -> Response:
    """A presigned download URL: JSON for the page's "Copy link" button, or a small page
    showing the link when the form was sent without JavaScript."""
    values = await form_values(request)
    key = values.get("key", "")
    wants_json = "application/json" in request.headers.get("accept", "")
    try:
        presigned = await _presigned_get(page, bucket_id, key)
    except ApiProblem as problem:
        if wants_json:
            return _problem_json(problem)
        raise
    if wants_json:
        return JSONResponse({"url": presigned["url"], "expires_at": presigned["expires_at"]})
    bucket = await page.api.get(_bucket_path(page, bucket_id))
    return render(request, "buckets/link.html", page=page, bucket=bucket, key=key, link=presigned)


# Uploads: the page's script asks for presigned PUT URLs and sends the bytes there itself


async def _relay(page: ProjectPage, request: Request, method: str, path: str) -> Response:
    """The script's JSON request sent on to the API as it is; the API's answer (or its
    problem, with its status) sent back."""
    body: Any = None
    if method == "POST":
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse(
                {"status": 400, "code": "invalid_json", "detail": "Send a JSON object."},
                status_code=400,
                media_type="application/problem+json",
            )
    try:
        response = await page.api.call(method, path, json=body)
    except ApiProblem as problem:
        return _problem_json(problem)
    if not response.content:
        return Response(status_code=response.status_code)
    return JSONResponse(response.json(), status_code=response.status_code)


@router.post(_BUCKET + "/presign")
async def presign(request: Request, page: InProject, bucket_id: uuid.UUID) -> Response:
    """A presigned URL for a single PUT (``key``, ``method``, ``content_length``…)."""
    return await _relay(page, request, "POST", _objects_path(page, bucket_id, "/presign"))


@router.post(_BUCKET + "/uploads")
async def begin_upload(request: Request, page: InProject, bucket_id: uuid.UUID) -> Response:
    return await _relay(page, request, "POST", _objects_path(page, bucket_id, "/uploads"))


@router.post(_BUCKET + "/uploads/{upload_id}/parts")
async def presign_part(
    request: Request, page: InProject, bucket_id: uuid.UUID, upload_id: uuid.UUID
) -> Response:
    path = _objects_path(page, bucket_id, f"/uploads/{upload_id}/parts")
    return await _relay(page, request, "POST", path)


@router.post(_BUCKET + "/uploads/{upload_id}/complete")
async def complete_upload(
    request: Request, page: InProject, bucket_id: uuid.UUID, upload_id: uuid.UUID
) -> Response:
    path = _objects_path(page, bucket_id, f"/uploads/{upload_id}/complete")
    return await _relay(page, request, "POST", path)


@router.delete(_BUCKET + "/uploads/{upload_id}")
async def abort_upload(
    request: Request, page: InProject, bucket_id: uuid.UUID, upload_id: uuid.UUID
) -> Response:
    path = _objects_path(page, bucket_id, f"/uploads/{upload_id}")
    return await _relay(page, request, "DELETE", path)
