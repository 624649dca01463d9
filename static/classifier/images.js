// Search results: ask before deleting an image, as the batch page does.
"use strict";

document.querySelectorAll("form.delete-image").forEach((form) => {
  form.addEventListener("submit", (event) => {
    if (!window.confirm("Delete this image? This cannot be undone.")) event.preventDefault();
  });
});
