""".env.example documents every setting, as `lariba settings` describes it.

Its reference section is generated from `settings_reference()`; after adding or changing a
setting, print the new section with `uv run python -m tests.docs.test_env_example` and
paste it over the old one.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

from lariba.core.settings import Settings, settings_reference

ENV_EXAMPLE = Path(__file__).resolve().parents[2] / ".env.example"

_ROW = re.compile(r"^\| `(LARIBA_[A-Z0-9_]+)` \| (.*?) \| (.*) \|$")
_LITERAL_DEFAULT = re.compile(r"^`([^`]*)`$")


def settings_section() -> str:
    """Every setting as commented env-file lines: its meaning, its default, the variable
    with that default (or empty, when the default is not a literal value)."""
    blocks = []
    for line in settings_reference().splitlines()[2:]:
        match = _ROW.match(line)
        assert match, f"unexpected row in settings_reference(): {line!r}"
        variable, default, description = match.groups()
        literal = _LITERAL_DEFAULT.match(default)
        value = literal.group(1) if literal else ""
        shown_default = value if literal else default.replace("`", "")
        comment = textwrap.wrap(description, width=86, break_on_hyphens=False)
        lines = [f"# {text}" for text in comment]
        lines += [f"# Default: {shown_default}", f"# {variable}={value}"]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def _assigned(text: str) -> set[str]:
    """Variables the file sets or shows commented out (`NAME=` or `# NAME=`)."""
    return set(re.findall(r"^(?:# )?(LARIBA_[A-Z0-9_]+)=", text, re.MULTILINE))


def test_env_example_documents_every_setting() -> None:
    text = ENV_EXAMPLE.read_text()
    missing = {f"LARIBA_{name.upper()}" for name in Settings.model_fields} - _assigned(text)
    assert not missing, f".env.example lacks {sorted(missing)}: regenerate its reference section"
    assert settings_section() in text, (
        ".env.example's reference section is out of date: regenerate it with "
        "`uv run python -m tests.docs.test_env_example`"
    )


def test_env_example_names_no_unknown_setting() -> None:
    known = {f"LARIBA_{name.upper()}" for name in Settings.model_fields}
    unknown = _assigned(ENV_EXAMPLE.read_text()) - known
    assert not unknown, f".env.example sets variables Lariba does not read: {sorted(unknown)}"


def test_env_example_required_values_make_a_production_config() -> None:
    """Filled in as its comments ask, the file's active lines give settings that pass
    production mode's checks."""
    active = dict(
        line.split("=", 1)
        for line in ENV_EXAMPLE.read_text().splitlines()
        if line.startswith("LARIBA_")
    )
    assert active["LARIBA_ENV"] == "production"
    assert active["LARIBA_SECRET_KEY"] == "", "the example must not ship a secret"
    values = {k.removeprefix("LARIBA_").lower(): v for k, v in active.items()}
    values["secret_key"] = "k" * 48
    values["database_url"] = "postgresql://lariba:pw@db:5432/lariba"
    settings = Settings(**values)  # type: ignore[arg-type]
    assert settings.env.value == "production"
    assert settings.secret_key is not None


if __name__ == "__main__":
    print(settings_section(), end="")
