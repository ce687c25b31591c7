// Metrics page: the From and To fields show only when the range is "Custom" (without
// this script they are always there, and only used for a custom range).
"use strict";

(() => {
  const range = document.getElementById("range");
  const custom = document.querySelector("[data-custom-range]");
  if (!range || !custom) return;
  const sync = () => { custom.hidden = range.value !== "custom"; };
  range.addEventListener("change", sync);
  sync();
})();
