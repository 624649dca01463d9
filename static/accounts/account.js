// The account page: select a new key for copying, and ask before revoking.
"use strict";

const newKey = document.getElementById("new-key");
if (newKey) {
  newKey.focus();
  newKey.select();
}
document.querySelectorAll("form.revoke").forEach((form) => {
  form.addEventListener("submit", (event) => {
    if (!window.confirm("Revoke? Programs using it stop working at once.")) event.preventDefault();
  });
});
