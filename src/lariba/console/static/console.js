// Lariba Cloud console: progressive enhancement only. Every page works without it.
"use strict";

function csrfToken() {
  const field = document.querySelector("input[name=csrf_token]");
  return field ? field.value : "";
}

// The project switcher goes to the chosen project at once.
document.querySelectorAll("[data-autosubmit]").forEach((select) => {
  select.addEventListener("change", () => select.form.submit());
});

// Ask before destructive actions (listening on the document, so that forms a live
// region brings in ask too).
document.addEventListener("submit", (event) => {
  const form = event.target;
  if (form instanceof HTMLFormElement && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
    event.preventDefault();
  }
});

// Copy buttons: data-copy holds the text, or data-copy-from the id of an element holding
// it (listening on the document, so that buttons a live region brings in work too).
document.addEventListener("click", async (event) => {
  const button = event.target instanceof Element && event.target.closest("[data-copy], [data-copy-from]");
  if (!button) return;
  const source = button.dataset.copyFrom && document.getElementById(button.dataset.copyFrom);
  const text = source ? (source.value || source.textContent) : button.dataset.copy;
  try {
    await navigator.clipboard.writeText(text.trim());
    button.textContent = "Copied";
  } catch (error) {
    button.textContent = "Copy failed: select and copy by hand";
  }
});

// Live regions: on each event of the project, fetch this page again and swap the
// region's content, keeping keyboard focus where it was.
async function refreshRegion(region) {
  const response = await fetch(window.location.href, { headers: { Accept: "text/html" } });
  if (!response.ok) return;
  const html = new DOMParser().parseFromString(await response.text(), "text/html");
  const fresh = html.getElementById(region.id);
  if (!fresh || fresh.innerHTML === region.innerHTML) return;
  const focused = document.activeElement;
  const focusKey = focused && region.contains(focused) ? (focused.closest("form")?.action || null) : null;
  region.innerHTML = fresh.innerHTML;
  if (focusKey) {
    const again = [...region.querySelectorAll("form")].find((f) => f.action === focusKey);
    again?.querySelector("button")?.focus();
  }
  region.dispatchEvent(new CustomEvent("lariba:refreshed", { bubbles: true }));
}

document.querySelectorAll("[data-live-region][data-live-events]").forEach((region) => {
  const source = new EventSource(region.dataset.liveEvents);
  let pending = null;
  const schedule = () => {
    if (pending) return;
    pending = setTimeout(async () => {
      pending = null;
      try { await refreshRegion(region); } catch (error) { /* the next event tries again */ }
    }, 150);
  };
  ["status_changed", "drift", "message"].forEach((type) => source.addEventListener(type, schedule));
  source.addEventListener("open", schedule);
  window.addEventListener("beforeunload", () => source.close());
});

window.lariba = { csrfToken };
