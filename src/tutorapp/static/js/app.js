// Progressive enhancement only: every page works without this file.
document.querySelectorAll("[data-detect-time-zone]").forEach((input) => {
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  if (zone && input.value === "UTC") {
    input.value = zone;
    document.querySelectorAll("[data-time-zone-label]").forEach((el) => { el.textContent = zone; });
  }
});
