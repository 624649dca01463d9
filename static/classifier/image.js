// One image: ask before deleting it; the arrow keys step to the previous or next image of the batch.
"use strict";

(function () {
  const form = document.querySelector("form.delete-image");
  if (form) {
    form.addEventListener("submit", (event) => {
      if (!window.confirm("Delete this image? This cannot be undone.")) event.preventDefault();
    });
  }
  document.addEventListener("keydown", (event) => {
    if (event.altKey || event.ctrlKey || event.metaKey || event.target.closest("input, select, textarea")) return;
    const link = document.getElementById(event.key === "ArrowLeft" ? "previous-image" : event.key === "ArrowRight" ? "next-image" : "");
    if (link) link.click();
  });
})();
