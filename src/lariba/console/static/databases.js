// Databases: a page answering a form post (a password shown once, or a refused change)
// takes its database's own address, so a reload shows the plain page (no password, no
// form sent again) and the live region refreshes from that address.
"use strict";

document.querySelectorAll("[data-page-url]").forEach((marker) => {
  if (window.location.pathname !== marker.dataset.pageUrl) {
    window.history.replaceState(null, "", marker.dataset.pageUrl);
  }
});
