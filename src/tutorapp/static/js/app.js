// Progressive enhancement only: every page works without this file.
// No inline scripts or handlers anywhere (CSP): behaviour hangs off data- attributes.
(function () {
  "use strict";

  function detectTimeZone(root) {
    const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (!zone) return;
    root.querySelectorAll("[data-detect-time-zone]").forEach((input) => {
      if (input.value === "UTC" && input.dataset.detected !== "1") {
        input.value = zone;
        input.dataset.detected = "1";
        root.querySelectorAll("[data-time-zone-label]").forEach((el) => { el.textContent = zone; });
        // show slots in the detected zone straight away
        const form = input.form;
        if (form && form.hasAttribute("hx-get") && window.htmx) {
          window.htmx.trigger(form, "submit");
        }
      }
    });
  }

  // <form data-confirm="Really?">: ask before a destructive action.
  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (form instanceof HTMLFormElement && form.dataset.confirm) {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    }
  }, true);

  document.addEventListener("DOMContentLoaded", () => detectTimeZone(document));
  document.addEventListener("htmx:afterSwap", (event) => detectTimeZone(event.target));

  if ("serviceWorker" in navigator && window.isSecureContext) {
    window.addEventListener("load", () => {
      navigator.serviceWorker.register("/sw.js", { scope: "/" }).catch(() => {});
    });
  }
})();
