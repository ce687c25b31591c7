"""Reading console forms and turning them into API request bodies."""

from __future__ import annotations

from fastapi import Request


async def form_values(request: Request) -> dict[str, str]:
    """The posted form's text fields (the CSRF token left out), stripped of surrounding
    whitespace; files are never posted to the console."""
    form = await request.form()
    return {
        name: value.strip()
        for name, value in form.multi_items()
        if isinstance(value, str) and name != "csrf_token"
    }


def number(text: str) -> int | str | None:
    """A whole-number field for the API, which takes JSON numbers: empty is left out;
    what is not a whole number goes as typed, so the API's own message says what is
    wrong with it."""
    text = text.strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        return text


def optional(values: dict[str, str], *names: str) -> dict[str, str]:
    """The named fields that were filled in: an empty field means "the API's default"."""
    return {name: values[name] for name in names if values.get(name)}


def labels_from_text(text: str) -> dict[str, str]:
    """``key=value`` pairs, one per line or separated by commas."""
    labels: dict[str, str] = {}
    for item in text.replace(",", "\n").splitlines():
        if item.strip():
            key, _, value = item.partition("=")
            labels[key.strip()] = value.strip()
    return labels
