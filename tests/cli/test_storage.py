"""Buckets and objects through the command line, against a real server: create a bucket,
copy files up (one of them in parts) and down again byte for byte, list, delete."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.cli.conftest import Lariba


def test_bucket_copy_round_trip(logged_in: Lariba, tmp_path: Path) -> None:
    lariba = logged_in
    project = json.loads(lariba.ok("projects", "create", "files", "--use", "--output", "json"))
    bucket = json.loads(
        lariba.ok("buckets", "create", "cli-files", "--label", "env=test", "--wait", "-o", "json")
    )
    assert (bucket["name"], bucket["status"], bucket["labels"]) == (
        "cli-files",
        "available",
        {"env": "test"},
    )
    small = tmp_path / "notes.txt"
    small.write_bytes(b"hello, buckets\n")
    large = tmp_path / "large.bin"
    large.write_bytes(os.urandom(5 * 1024 * 1024 // 2))  # 2.5 MiB: three 1 MiB parts

    up_small = lariba("cp", str(small), "lariba://cli-files/docs/")
    up_large = lariba(
        "cp", str(large), f"lariba://{bucket['id']}/data/large.bin",
        "--part-size", "1MiB", "--progress", "-o", "json",
    )  # fmt: skip

    assert up_small.returncode == 0, up_small.stderr
    assert "lariba://cli-files/docs/notes.txt" in up_small.stdout
    assert up_large.returncode == 0, up_large.stderr
    stored = json.loads(up_large.stdout)
    assert stored["size"] == large.stat().st_size
    assert stored["etag"].endswith("-3")  # uploaded in three parts
    assert "2.5 MiB / 2.5 MiB  100%" in up_large.stderr

    top = lariba.ok("ls", "lariba://cli-files/")
    assert [line.split()[0] for line in top.splitlines()] == ["KEY", "data/", "docs/"]
    docs = json.loads(lariba.ok("ls", "lariba://cli-files/docs/", "-o", "json"))
    assert [(o["key"], o["size"]) for o in docs["objects"]] == [("docs/notes.txt", 15)]
    everything = json.loads(lariba.ok("ls", "lariba://cli-files/", "--recursive", "-o", "json"))
    assert [o["key"] for o in everything["objects"]] == ["data/large.bin", "docs/notes.txt"]

    down = tmp_path / "down"
    down.mkdir()
    lariba.ok("cp", "lariba://cli-files/docs/notes.txt", f"{down}/")
    lariba.ok("cp", "lariba://cli-files/data/large.bin", str(down / "copy.bin"))
    assert (down / "notes.txt").read_bytes() == small.read_bytes()
    assert (down / "copy.bin").read_bytes() == large.read_bytes()

    missing = lariba("cp", "lariba://cli-files/docs/absent.txt", str(down))
    assert missing.returncode == 1
    assert "object docs/absent.txt not found in bucket cli-files" in missing.stderr

    refused = lariba("buckets", "delete", "cli-files")
    assert refused.returncode == 1, refused.stderr
    deleted = lariba("buckets", "delete", "cli-files", "--force", "--wait")
    assert deleted.returncode == 0, deleted.stderr
    assert f"Bucket cli-files ({bucket['id']}) deleted." in deleted.stdout
    assert json.loads(lariba.ok("buckets", "list", "-o", "json")) == []
    lariba.ok("projects", "delete", project["id"])


def test_unknown_bucket_is_exit_1(logged_in: Lariba, tmp_path: Path) -> None:
    logged_in.ok("projects", "create", "nobucket", "--use")
    file = tmp_path / "a.txt"
    file.write_text("a")

    result = logged_in("cp", str(file), "lariba://no-such-bucket/a.txt")

    assert result.returncode == 1
    assert "bucket no-such-bucket not found in project" in result.stderr
    assert "lariba buckets list" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{a}", "lariba:/bucket/a.txt"], "not a bucket URL: expected lariba://BUCKET/KEY"),
        (["{a}", "lariba:///a.txt"], "the URL names no bucket"),
        (["{a}", "s3://bucket/a.txt"], "s3:// is not supported"),
        (["{a}", "b.txt"], "one side of `lariba cp` is a local path"),
        (["{missing}", "lariba://bucket/"], "missing.txt: no such file"),
        (["lariba://bucket/folder/", "out.txt"], "name an object (lariba://BUCKET/KEY)"),
        (["{a}", "lariba://bucket/", "--part-size", "lots"], "--part-size lots: expected a size"),
    ],
)
def test_bad_copy_arguments_are_usage_errors(
    lariba: Lariba, tmp_path: Path, args: list[str], message: str
) -> None:
    """Checked before anything else: no login or project is needed to be told."""
    (tmp_path / "a.txt").write_text("a")
    paths = {"a": str(tmp_path / "a.txt"), "missing": str(tmp_path / "missing.txt")}

    result = lariba("cp", *(arg.format(**paths) for arg in args))

    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("lariba: ")
    assert message in result.stderr
