// Lariba Cloud console, alerts and webhooks: progressive enhancement only.
"use strict";

// The alert form shows the fields of the chosen source (a metric or the cost); without
// this script both are shown and the server uses the chosen one's.
document.querySelectorAll("input[name=kind][data-shows]").forEach((radio) => {
  const form = radio.form;
  const update = () => {
    const chosen = form.querySelector("input[name=kind]:checked");
    form.querySelectorAll("[data-kind]").forEach((group) => {
      group.hidden = !chosen || group.dataset.kind !== chosen.dataset.shows;
    });
  };
  radio.addEventListener("change", update);
  update();
});

// A page showing a secret once was the answer to a form: the address bar gets the
// page's own address, so reloading it (or going back to it) shows the page without the
// secret and never sends the form again.
document.querySelectorAll("[data-replace-url]").forEach((element) => {
  window.history.replaceState(null, "", element.dataset.replaceUrl);
});
