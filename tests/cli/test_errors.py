"""What the command line says when something is wrong: one line saying what and what to
do, and the documented exit code."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from tests.cli.conftest import Lariba
from tests.fixtures.serve import free_port


def test_unknown_instance_id_names_it_and_exits_1(logged_in: Lariba) -> None:
    project = json.loads(logged_in.ok("projects", "create", "errors", "--output", "json"))
    missing = str(uuid.uuid4())

    for instance_id in (missing, "1234"):
        result = logged_in("instances", "get", instance_id, "--project", project["id"])

        assert result.returncode == 1, result.stderr
        assert result.stderr == (
            f"lariba: instance {instance_id} not found in project {project['id']}: "
            f"see `lariba instances list --project {project['id']}`\n"
        )


def test_unknown_project_exits_1(logged_in: Lariba) -> None:
    result = logged_in("instances", "list", "--project", str(uuid.uuid4()))

    assert result.returncode == 1
    assert result.stderr == (
        "lariba: project not found (or you are not a member): see `lariba projects list`\n"
    )


def test_unreachable_server_exits_4(lariba: Lariba) -> None:
    url = f"http://127.0.0.1:{free_port()}"

    result = lariba("login", "--url", url, "--email", "a@example.com", "--password-stdin",
                    input="whatever\n")  # fmt: skip

    assert result.returncode == 4
    assert result.stderr.startswith(f"lariba: cannot reach {url}: is the server running")
    assert result.stderr.count("\n") == 1
    assert not lariba.config.exists()


def test_not_logged_in_exits_3(lariba: Lariba) -> None:
    result = lariba("projects", "list")

    assert result.returncode == 3
    assert result.stderr == "lariba: not logged in (profile default): run `lariba login`\n"


def test_no_project_chosen_is_a_usage_error(logged_in: Lariba) -> None:
    result = logged_in("instances", "list")

    assert result.returncode == 2
    assert "pass --project ID" in result.stderr


def test_bad_firewall_rule_is_a_usage_error(logged_in: Lariba) -> None:
    result = logged_in(
        "instances", "create", "x", "--size", "nano", "--image", "shell",
        "--project", str(uuid.uuid4()), "--firewall", "tcp:22",
    )  # fmt: skip

    assert result.returncode == 2
    assert "expected PROTOCOL[:PORT[-PORT]]@CIDR" in result.stderr


def test_unreadable_config_says_which_file(lariba: Lariba) -> None:
    lariba.config.parent.mkdir(parents=True)
    lariba.config.write_text("this is [not toml")

    result = lariba("whoami")

    assert result.returncode == 2
    assert str(lariba.config) in result.stderr


def test_config_path_follows_xdg_config_home(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    config = tmp_path / "xdg" / "lariba" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text(f'[profiles.default]\nurl = "{url}"\napi_key = "lrb_x"\n')
    lariba = Lariba(config=tmp_path / "unused.toml")

    result = lariba("whoami", env={"LARIBA_CONFIG": "", "XDG_CONFIG_HOME": str(config.parents[1])})

    assert result.returncode == 4
    assert f"cannot reach {url}" in result.stderr
