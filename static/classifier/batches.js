// The uploader: drag-and-drop or pick many files, refuse obviously wrong ones at once, then send
// the rest through the API in several requests, with a progress bar per file. Without this
// script the form still posts to the server in one request.
"use strict";

(function () {
  const form = document.getElementById("upload-form");
  if (!form || !window.FormData || !window.XMLHttpRequest) return;

  const limits = JSON.parse(document.getElementById("upload-limits").textContent);
  const input = document.getElementById("files");
  const zone = document.getElementById("dropzone");
  const list = document.getElementById("file-list");
  const statusLine = document.getElementById("upload-status");
  const uploadButton = document.getElementById("upload-button");
  const clearButton = document.getElementById("clear-button");
  const batchLink = document.getElementById("batch-link");
  const csrf = form.querySelector("[name=csrfmiddlewaretoken]").value;

  const EXTENSIONS = ["jpg", "jpeg", "jpe", "png", "gif", "webp", "bmp", "tif", "tiff"];
  const IMAGE_TYPES = ["image/jpeg", "image/png", "image/gif", "image/webp", "image/bmp", "image/tiff"];
  const ZIP_TYPES = ["application/zip", "application/x-zip-compressed"];
  const KNOWN_UNSUPPORTED = { heic: "HEIC", heif: "HEIF", avif: "AVIF", svg: "SVG", pdf: "PDF" };
  const HINT = "upload JPEG, PNG, GIF, WebP, BMP or TIFF.";

  let items = [];   // {file, row, bar, state, problem, done}
  let busy = false;

  function extension(name) {
    const dot = name.lastIndexOf(".");
    return dot < 0 ? "" : name.slice(dot + 1).toLowerCase();
  }

  function bytes(n) {
    if (n < 1024) return n + " B";
    if (n < 1024 * 1024) return (n / 1024).toFixed(0) + " KB";
    return (n / 1024 / 1024).toFixed(1) + " MB";
  }

  function isZip(file) {
    return extension(file.name) === "zip" || ZIP_TYPES.includes(file.type);
  }

  // Only what is obviously wrong: the server decodes and checks everything again.
  function problem(file) {
    const ext = extension(file.name);
    if (file.size === 0) return "The file is empty.";
    if (isZip(file)) {
      return file.size > limits.max_archive_bytes
        ? "The archive is too large: " + bytes(file.size) + " (limit " + bytes(limits.max_archive_bytes) + ")." : "";
    }
    if (KNOWN_UNSUPPORTED[ext]) return KNOWN_UNSUPPORTED[ext] + " is not supported; " + HINT;
    if (!EXTENSIONS.includes(ext) && !IMAGE_TYPES.includes(file.type)) return "Not an image; " + HINT;
    if (file.size > limits.max_upload_bytes) {
      return "The file is too large: " + bytes(file.size) + " (limit " + bytes(limits.max_upload_bytes) + ").";
    }
    return "";
  }

  function addRow(name, size) {
    const row = document.createElement("li");
    const nameEl = document.createElement("span");
    nameEl.className = "file-name";
    nameEl.textContent = name;
    nameEl.title = name;
    const sizeEl = document.createElement("span");
    sizeEl.className = "file-size";
    sizeEl.textContent = size === null ? "" : bytes(size);
    const bar = document.createElement("progress");
    bar.max = 100;
    bar.value = 0;
    bar.setAttribute("aria-label", "Upload progress of " + name);
    const state = document.createElement("span");
    state.className = "file-state";
    row.append(nameEl, sizeEl, bar, state);
    list.append(row);
    list.hidden = false;
    return { row, bar, state };
  }

  function setState(item, cls, text) {
    item.row.className = cls;
    item.state.textContent = text;
  }

  function addFiles(files) {
    if (busy) return;
    for (const file of files) {
      const item = Object.assign({ file, problem: problem(file), done: false }, addRow(file.name, file.size));
      if (item.problem) {
        item.bar.hidden = true;
        setState(item, "rejected", "Not sent: " + item.problem);
      } else {
        setState(item, "waiting", "Ready");
      }
      items.push(item);
    }
    refresh();
  }

  function sendable() {
    return items.filter((item) => !item.problem && !item.done);
  }

  function refresh() {
    const ready = sendable().length;
    const rejected = items.filter((item) => item.problem).length;
    uploadButton.textContent = ready ? "Upload " + ready + " file" + (ready === 1 ? "" : "s") : "Upload";
    uploadButton.disabled = busy || !ready;
    clearButton.hidden = busy || !items.length;
    if (!busy) {
      statusLine.textContent = items.length
        ? ready + " ready to upload" + (rejected ? ", " + rejected + " not accepted (see below)." : ".") : "";
    }
  }

  // Several requests, each with at most request_files files and about request_bytes bytes.
  function groups(ready) {
    const result = [];
    let group = [];
    let size = 0;
    for (const item of ready) {
      if (group.length && (group.length >= limits.request_files || size + item.file.size > limits.request_bytes)) {
        result.push(group);
        group = [];
        size = 0;
      }
      group.push(item);
      size += item.file.size;
    }
    if (group.length) result.push(group);
    return result;
  }

  // XHR reports bytes of the whole body; the files are sent in order, so spread it over them.
  function spread(group, loaded, total) {
    const sum = group.reduce((n, item) => n + item.file.size, 0) || 1;
    let sent = loaded * (sum / total);
    for (const item of group) {
      const part = Math.max(0, Math.min(item.file.size, sent));
      item.bar.value = item.file.size ? (100 * part) / item.file.size : 100;
      sent -= item.file.size;
    }
  }

  function post(url, group) {
    return new Promise((resolve) => {
      const data = new FormData();
      group.forEach((item) => data.append("images", item.file, item.file.name));
      const xhr = new XMLHttpRequest();
      xhr.open("POST", url);
      xhr.setRequestHeader("X-CSRFToken", csrf);
      xhr.setRequestHeader("Accept", "application/json");
      xhr.responseType = "json";
      xhr.upload.addEventListener("progress", (event) => {
        if (event.lengthComputable) spread(group, event.loaded, event.total);
      });
      xhr.addEventListener("load", () => resolve({
        status: xhr.status, body: xhr.response || {}, retryAfter: Number(xhr.getResponseHeader("Retry-After")) || 5,
      }));
      xhr.addEventListener("error", () => resolve({ status: 0, body: {} }));
      group.forEach((item) => setState(item, "sending", "Uploading…"));
      xhr.send(data);
    });
  }

  // Match the server's refusals to the files by name; unmatched ones came from inside a .zip.
  function settle(group, body, ok) {
    const open = group.slice();
    for (const refusal of body.refused || []) {
      const index = open.findIndex((item) => item.file.name === refusal.name || item.file.name.endsWith("/" + refusal.name));
      if (index >= 0) {
        const [item] = open.splice(index, 1);
        setState(item, "refused", "Refused: " + refusal.error);
        item.done = true;
      } else {
        const extra = addRow(refusal.name, null);
        extra.bar.hidden = true;
        setState(extra, "refused", "Refused (inside an archive): " + refusal.error);
      }
    }
    for (const item of open) {
      item.bar.value = ok ? 100 : item.bar.value;
      if (ok) setState(item, "accepted", isZip(item.file) ? "Uploaded and expanded" : "Uploaded, queued");
      else setState(item, "refused", "Refused: " + (body.detail || "the server refused it."));
      item.done = true;
    }
    return (body.images || []).length;
  }

  function failGroup(group, text) {
    group.forEach((item) => { setState(item, "refused", text); item.done = true; });
  }

  async function sendGroup(group, batchId) {
    const url = batchId ? form.dataset.addUrl.replace("/0/", "/" + batchId + "/") : form.dataset.createUrl;
    for (let attempt = 1; ; attempt++) {
      const answer = await post(url, group);
      const retry = answer.status === 429 || answer.status === 0 || answer.status >= 500;
      if (retry && attempt < 4) {
        group.forEach((item) => setState(item, "waiting", "Waiting to retry…"));
        await new Promise((wake) => setTimeout(wake, (answer.status === 429 ? answer.retryAfter : attempt * 2) * 1000));
        continue;
      }
      return answer;
    }
  }

  async function upload() {
    busy = true;
    refresh();
    window.addEventListener("beforeunload", warn);
    let batchId = null;
    let accepted = 0;
    const all = groups(sendable());
    for (const [number, group] of all.entries()) {
      statusLine.textContent = "Uploading part " + (number + 1) + " of " + all.length + "…";
      const answer = await sendGroup(group, batchId);
      if (answer.status === 201) {
        batchId = answer.body.id;
        accepted += settle(group, answer.body, true);
      } else if (answer.status === 400 || answer.status === 413) {
        settle(group, answer.body, false);
      } else {
        const detail = answer.body.detail || (answer.status ? "the server answered " + answer.status : "network error");
        failGroup(group, "Not uploaded: " + detail);
      }
    }
    const failures = list.querySelectorAll("li.refused").length;
    busy = false;
    window.removeEventListener("beforeunload", warn);
    finish(batchId, accepted, failures);
  }

  function finish(batchId, accepted, failures) {
    refresh();
    const rejected = items.filter((item) => item.problem).length;
    if (!batchId) {
      statusLine.textContent = "No image was accepted. See the reasons below.";
      return;
    }
    const url = form.dataset.batchUrl.replace("/0/", "/" + batchId + "/");
    if (!failures && !rejected) {
      statusLine.textContent = accepted + " image(s) uploaded. Opening the batch…";
      window.location.assign(url);
      return;
    }
    statusLine.textContent = accepted + " image(s) uploaded into batch " + batchId + "; " +
      (failures + rejected) + " file(s) not accepted (see below).";
    batchLink.href = url;
    batchLink.textContent = "Open batch " + batchId;
    batchLink.hidden = false;
    batchLink.focus();
  }

  function warn(event) {
    event.preventDefault();
    event.returnValue = "";
  }

  input.addEventListener("change", () => {
    addFiles(input.files);
    input.value = "";
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (!busy && sendable().length) upload();
  });
  clearButton.addEventListener("click", () => {
    items = [];
    list.replaceChildren();
    list.hidden = true;
    batchLink.hidden = true;
    refresh();
    input.focus();
  });
  ["dragenter", "dragover"].forEach((type) => zone.addEventListener(type, (event) => {
    event.preventDefault();
    zone.classList.add("dragging");
  }));
  ["dragleave", "drop"].forEach((type) => zone.addEventListener(type, () => zone.classList.remove("dragging")));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    addFiles(event.dataTransfer.files);
  });
  refresh();
  form.dataset.ready = "true";  // the uploader handles what is chosen from now on
})();
