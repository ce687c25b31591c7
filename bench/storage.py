"""Benchmark of the local provider's object storage, through a real ``lariba serve``:
a large object uploaded and downloaded at presigned URLs, against ``cp`` of the same file
in the same run (the ratio of throughputs), the server's peak RSS while it streamed, and
many small objects put and then listed page by page.

    uv run python -m bench.storage [--size-mib 1024] [--objects 10000] [--short]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

HOST = "127.0.0.1"
TARGET_RATIO = 0.5
TARGET_RSS_MB = 200.0
CHUNK = 1024 * 1024
PASSWORD = "storage-benchmark-passphrase-1"
_READY_SECONDS = 90.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _rss_mb(pid: int, field: str = "VmHWM") -> float:
    """The process's resident memory in MB: its high-water mark (VmHWM) or now (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@contextlib.contextmanager
def lariba_serve(workdir: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``lariba serve`` with its embedded PostgreSQL and in-process worker, on a free port."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LARIBA_")}
    env.update(
        LARIBA_DATA_DIR=str(workdir / "data"),
        LARIBA_PORT=str(port),
        LARIBA_ADMIN_EMAIL="root@example.com",
        LARIBA_ADMIN_PASSWORD=PASSWORD,
        LARIBA_LOG_LEVEL="WARNING",
        LARIBA_QUOTA_STORAGE_BYTES=str(10 * 1024**4),
    )
    log = workdir / "serve.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "lariba.cli.main", "serve"],
            env=env,
            stdout=out,
            stderr=out,
            stdin=subprocess.DEVNULL,
        )
    base = f"http://{HOST}:{port}"
    try:
        deadline = time.monotonic() + _READY_SECONDS
        while True:
            if process.poll() is not None:
                raise SystemExit(f"lariba serve exited:\n{log.read_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise SystemExit(f"lariba serve not ready:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield base, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def progress(message: str) -> None:
    print(f"... {message}", file=sys.stderr, flush=True)


async def _bucket(client: httpx.AsyncClient) -> tuple[dict[str, str], str, str]:
    email = f"bench-{secrets.token_hex(4)}@example.com"
    await client.post("/v1/auth/signup", json={"email": email, "password": PASSWORD})
    token = (
        await client.post("/v1/auth/token", data={"username": email, "password": PASSWORD})
    ).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    project = (await client.post("/v1/projects", json={"name": "bench"}, headers=headers)).json()
    created = await client.post(
        f"/v1/projects/{project['id']}/buckets", json={"name": "bench"}, headers=headers
    )
    operation = created.json()
    for _ in range(600):
        state = await client.get(
            f"/v1/projects/{project['id']}/operations/{operation['id']}", headers=headers
        )
        if state.json()["status"] == "succeeded":
            break
        await asyncio.sleep(0.1)
    else:
        raise SystemExit(f"bucket not created: {state.text}")
    return headers, project["id"], operation["resource"]["id"]


async def _presign(
    client: httpx.AsyncClient, headers: dict[str, str], objects: str, **body: Any
) -> dict[str, Any]:
    response = await client.post(f"{objects}/presign", json=body, headers=headers)
    response.raise_for_status()
    signed: dict[str, Any] = response.json()
    return signed


def _write_random(path: Path, size: int) -> None:
    block = os.urandom(CHUNK)
    with path.open("wb") as out:
        for _ in range(size // CHUNK):
            out.write(block)
        out.write(block[: size % CHUNK])
        # On disk before anything is timed: no write-back of it competes with what is.
        out.flush()
        os.fsync(out.fileno())


def _timed(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - started


def _cp_seconds(cp: str, source: Path, target: Path, *, durable: bool) -> float:
    """``cp`` alone, or ``cp`` and an fsync of the copy (which a stored object gets)."""
    started = time.perf_counter()
    subprocess.run([cp, str(source), str(target)], check=True)
    if durable:
        with target.open("rb") as copy:
            os.fsync(copy.fileno())
    elapsed = time.perf_counter() - started
    target.unlink()
    return elapsed


async def large_object(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    objects: str,
    workdir: Path,
    size: int,
) -> dict[str, float]:
    source = workdir / "large.bin"
    await asyncio.to_thread(_write_random, source, size)
    cp, curl = shutil.which("cp"), shutil.which("curl")
    if cp is None or curl is None:
        raise SystemExit("the benchmark needs cp and curl")
    copy = workdir / "large.copy"
    # Best of two: the first may still pay for reading the source into the page cache.
    cp_seconds = min(
        [await asyncio.to_thread(_cp_seconds, cp, source, copy, durable=False) for _ in "12"]
    )
    cp_fsync_seconds = min(
        [await asyncio.to_thread(_cp_seconds, cp, source, copy, durable=True) for _ in "12"]
    )

    signed = await _presign(
        client, headers, objects, key="large.bin", method="PUT", content_length=size
    )
    # curl moves the bytes: what is measured is the server, not a Python client.
    upload = [curl, "-sS", "--fail", "-X", "PUT", "-T", str(source), "-o", os.devnull]
    for name, value in signed["headers"].items():
        upload += ["-H", f"{name}: {value}"]
    upload_seconds = await asyncio.to_thread(_timed, [*upload, signed["url"]])

    signed = await _presign(client, headers, objects, key="large.bin", method="GET")
    target = workdir / "large.download"
    download = [curl, "-sS", "--fail", "-o", str(target), signed["url"]]
    download_seconds = await asyncio.to_thread(_timed, download)
    same = await asyncio.to_thread(_same_file, source, target)
    if not same:
        raise SystemExit("the downloaded object differs from the uploaded file")
    target.unlink()
    source.unlink()
    return {
        "cp_seconds": round(cp_seconds, 3),
        "cp_fsync_seconds": round(cp_fsync_seconds, 3),
        "upload_ratio_to_cp_fsync": round(cp_fsync_seconds / upload_seconds, 3),
        "upload_seconds": round(upload_seconds, 3),
        "download_seconds": round(download_seconds, 3),
        "upload_ratio": round(cp_seconds / upload_seconds, 3),
        "download_ratio": round(cp_seconds / download_seconds, 3),
    }


def _same_file(a: Path, b: Path) -> bool:
    with a.open("rb") as left, b.open("rb") as right:
        while True:
            x, y = left.read(CHUNK), right.read(CHUNK)
            if x != y:
                return False
            if not x:
                return True


async def small_objects(
    client: httpx.AsyncClient, headers: dict[str, str], objects: str, count: int
) -> dict[str, float]:
    data = b"s" * 100
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(i)

    async def put_many() -> None:
        while not queue.empty():
            i = queue.get_nowait()
            signed = await _presign(
                client,
                headers,
                objects,
                key=f"small/{i // 100:03d}/{i:06d}.txt",
                method="PUT",
                content_length=len(data),
            )
            sent = await client.put(signed["url"], content=data, headers=signed["headers"])
            sent.raise_for_status()

    started = time.perf_counter()
    await asyncio.gather(*(put_many() for _ in range(8)))
    put_seconds = time.perf_counter() - started

    started = time.perf_counter()
    listed, pages, cursor = 0, 0, None
    while True:
        params: dict[str, Any] = {"prefix": "small/", "limit": 1000}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get(objects, params=params, headers=headers)).json()
        listed += len(page["items"])
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    list_seconds = time.perf_counter() - started
    if listed != count:
        raise SystemExit(f"listed {listed} of {count} objects")
    return {
        "objects": count,
        "put_seconds": round(put_seconds, 2),
        "puts_per_second": round(count / put_seconds, 1),
        "list_pages": pages,
        "list_seconds": round(list_seconds, 2),
    }


async def run(
    base: str, server: subprocess.Popen[bytes], workdir: Path, args: Any
) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base, timeout=600) as client:
        headers, project_id, bucket_id = await _bucket(client)
        objects = f"/v1/projects/{project_id}/buckets/{bucket_id}/objects"
        rss_before = _rss_mb(server.pid)
        progress(f"{args.size_mib} MiB upload and download vs cp")
        large = await large_object(client, headers, objects, workdir, args.size_mib * 1024 * 1024)
        rss = _rss_mb(server.pid)
        progress(f"{args.objects} small objects: put, then list")
        small = await small_objects(client, headers, objects, args.objects)
    return {
        "large": {"size_mib": args.size_mib, **large},
        "server_peak_rss_mb": round(rss, 1),
        "server_peak_rss_mb_before": round(rss_before, 1),
        "small": small,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--objects", type=int, default=10_000)
    parser.add_argument("--short", action="store_true", help="64 MiB and 1,000 objects")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if args.short:
        args.size_mib, args.objects = 64, 1000
    with tempfile.TemporaryDirectory(prefix="lariba-bench-storage-") as tmp:
        workdir = Path(tmp)
        with lariba_serve(workdir) as (base, server):
            try:
                results = asyncio.run(run(base, server, workdir, args))
            except httpx.HTTPStatusError:
                # What the server logged is the only account of a 5xx once the run ends.
                log = (workdir / "serve.log").read_text(errors="replace")
                print(f"lariba serve's log, last lines:\n{log[-6000:]}", file=sys.stderr)
                raise
    large = results["large"]
    print(f"object storage (local provider), {large['size_mib']} MiB object:")
    print(f"  cp                 {large['cp_seconds']:8.2f} s")
    print(f"  cp, then fsync     {large['cp_fsync_seconds']:8.2f} s")
    print(
        f"  upload (PUT)       {large['upload_seconds']:8.2f} s   ratio to cp "
        f"{large['upload_ratio']:.2f} (target >= {TARGET_RATIO}), to cp + fsync "
        f"{large['upload_ratio_to_cp_fsync']:.2f}"
    )
    print(
        f"  download (GET)     {large['download_seconds']:8.2f} s   ratio to cp "
        f"{large['download_ratio']:.2f} (target >= {TARGET_RATIO})"
    )
    print(
        f"  server peak RSS    {results['server_peak_rss_mb']:8.1f} MB  (target < {TARGET_RSS_MB}; "
        f"{results['server_peak_rss_mb_before']:.1f} MB before the transfers)"
    )
    small = results["small"]
    print(
        f"  {small['objects']} small objects: put in {small['put_seconds']} s "
        f"({small['puts_per_second']}/s, presign + PUT each), listed in "
        f"{small['list_pages']} pages in {small['list_seconds']} s"
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
