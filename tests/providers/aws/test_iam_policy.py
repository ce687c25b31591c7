"""The IAM policy published in docs/providers.md grants every EC2 call the provider makes."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
PROVIDER_DIR = ROOT / "src" / "lariba" / "providers" / "aws"
DOCS = ROOT / "docs" / "providers.md"


def calls_made() -> set[str]:
    source = "\n".join(path.read_text() for path in PROVIDER_DIR.glob("*.py"))
    methods = set(re.findall(r"client\.([a-z_]+)\(", source))
    methods |= set(re.findall(r'get_paginator\("([a-z_]+)"\)', source))
    methods.discard("get_paginator")
    return {"ec2:" + "".join(part.title() for part in m.split("_")) for m in methods}


def policy_actions() -> set[str]:
    section = DOCS.read_text().split("## aws", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```json\n(.*?)```", section, re.S)
    assert block, "docs/providers.md has no IAM policy for aws"
    actions: set[str] = set()
    for statement in json.loads(block.group(1))["Statement"]:
        action = statement["Action"]
        actions |= {action} if isinstance(action, str) else set(action)
    return actions


def test_policy_allows_every_ec2_call_of_the_provider() -> None:
    made = calls_made()

    assert "ec2:RunInstances" in made
    assert made <= policy_actions()


def test_policy_allows_nothing_the_provider_does_not_call() -> None:
    # CreateTags is implied by tagging on create, not called directly.
    assert policy_actions() - calls_made() == {"ec2:CreateTags"}
