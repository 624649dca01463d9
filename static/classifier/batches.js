// The uploader: drag-and-drop or pick many files, refuse obviously wrong ones at once, then upload
// the rest in parts. Images go straight to storage: for each part the API admits the declared names
// and sizes and gives a presigned POST per file, the browser posts each file to the bucket, then
// commits the keys that arrived (no image passes through the web server). A .zip goes to the API
// as a form upload, since the server expands it. One bar shows the whole upload (files and bytes),
// and a row per file shows its own. Without this script the form still posts to the server.
"use strict";

(function () {
  const form = document.getElementById("upload-form");
  if (!form || !window.FormData || !window.XMLHttpRequest || !window.fetch) return;

  const limits = JSON.parse(document.getElementById("upload-limits").textContent);
  const input = document.getElementById("files");
  const zone = document.getElementById("dropzone");
  const list = document.getElementById("file-list");
  const statusLine = document.getElementById("upload-status");
  const uploadButton = document.getElementById("upload-button");
  const clearButton = document.getElementById("clear-button");
  const batchLink = document.getElementById("batch-link");
  const overall = document.getElementById("overall");
  const overallBar = document.getElementById("overall-bar");
  const overallText = document.getElementById("overall-text");
  const csrf = form.querySelector("[name=csrfmiddlewaretoken]").value;
  const channel = window.BroadcastChannel ? new BroadcastChannel("imgsite-uploads") : null;

  const EXTENSIONS = ["jpg", "jpeg", "jpe", "png", "gif", "webp", "avif", "heic", "heif", "bmp", "tif", "tiff"];
  const IMAGE_TYPES = ["image/jpeg", "image/png", "image/gif", "image/webp", "image/avif", "image/heic", "image/heif",
    "image/bmp", "image/tiff"];
  const ZIP_TYPES = ["application/zip", "application/x-zip-compressed"];
  const KNOWN_UNSUPPORTED = { svg: "SVG", pdf: "PDF" };
  const HINT = "upload JPEG, PNG, GIF, WebP, AVIF, HEIC, BMP or TIFF.";
  const STORAGE_POSTS = 4;  // files posted to storage at once
  const ATTEMPTS = 4;

  let items = [];  // the chosen files: {file, row, bar, state, problem, outcome, loaded}
  let busy = false;
  let run = null;  // the upload under way, or the last one: {items, batchId, stopped}

  function extension(name) {
    const dot = name.lastIndexOf(".");
    return dot < 0 ? "" : name.slice(dot + 1).toLowerCase();
  }

  function bytes(n) {
    if (n < 1024) return n + " B";
    if (n < 1024 * 1024) return (n / 1024).toFixed(0) + " KB";
    return (n / 1024 / 1024).toFixed(1) + " MB";
  }

  function plural(count, word) {
    return count + " " + word + (count === 1 ? "" : "s");
  }

  function isZip(file) {
    return extension(file.name) === "zip" || ZIP_TYPES.includes(file.type);
  }

  function sleep(seconds) {
    return new Promise((wake) => setTimeout(wake, seconds * 1000));
  }

  function withId(url, id) {
    return url.replace("/0/", "/" + id + "/");
  }

  // Only what is obviously wrong: the server (or, for files sent to storage, the worker) checks the bytes.
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

  // A row's final outcome; counted once.
  function accept(item, text) {
    item.outcome = "accepted";
    item.loaded = item.file.size;
    item.bar.value = 100;
    setState(item, "accepted", text || "Uploaded, queued");
    showOverall();
  }

  function refuse(item, text) {
    item.outcome = "refused";
    setState(item, "refused", text);
    showOverall();
  }

  // Choosing files after an upload starts a new one: the last one's rows, counts and link go.
  function reset() {
    items = [];
    run = null;
    list.replaceChildren();
    list.hidden = true;
    batchLink.hidden = true;
    overall.hidden = true;
    statusLine.textContent = "";
  }

  function addFiles(files) {
    if (busy) return;
    if (run) reset();
    for (const file of files) {
      const item = Object.assign({ file, problem: problem(file), outcome: "", loaded: 0 }, addRow(file.name, file.size));
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
    return items.filter((item) => !item.problem && !item.outcome);
  }

  function refresh() {
    const ready = run ? 0 : sendable().length;
    const rejected = items.filter((item) => item.problem).length;
    uploadButton.textContent = ready ? "Upload " + plural(ready, "file") : "Upload";
    uploadButton.disabled = busy || !ready;
    clearButton.hidden = busy || !items.length;
    if (!busy && !run) {
      statusLine.textContent = items.length
        ? ready + " ready to upload" + (rejected ? ", " + rejected + " not accepted (see below)." : ".") : "";
    }
  }

  function showOverall() {
    if (!run) return;
    const total = run.items.reduce((n, item) => n + item.file.size, 0);
    const loaded = run.items.reduce((n, item) => n + Math.min(item.loaded, item.file.size), 0);
    const finished = run.items.filter((item) => item.outcome).length;
    overallBar.max = total || 1;
    overallBar.value = loaded;
    overallText.textContent = finished + " of " + plural(run.items.length, "file") + " done · " + bytes(loaded) +
      " of " + bytes(total) + " sent";
    overall.hidden = false;
  }

  // Parts of at most request_files files and about request_bytes bytes; a .zip is a part of its own.
  function parts(ready) {
    const result = [];
    let part = [];
    let size = 0;
    for (const item of ready) {
      const zip = isZip(item.file);
      if (part.length && (zip || part.length >= limits.request_files || size + item.file.size > limits.request_bytes)) {
        result.push(part);
        part = [];
        size = 0;
      }
      if (zip) {
        result.push([item]);
        continue;
      }
      part.push(item);
      size += item.file.size;
    }
    if (part.length) result.push(part);
    return result;
  }

  // A refusal that waiting a little will not cure: a quota (its Retry-After may be hours) or a full batch.
  function final(answer) {
    return Boolean(answer.body.error_code) || answer.retryAfter > 60;
  }

  function retryable(answer) {
    if (answer.status === 429) return !final(answer) && !answer.body.refused;  // the upload rate: brief
    return answer.status === 0 || answer.status >= 500;
  }

  async function patiently(send, waiting) {
    for (let attempt = 1; ; attempt++) {
      const answer = await send();
      if (!retryable(answer) || attempt >= ATTEMPTS) return answer;
      waiting.forEach((item) => setState(item, "waiting", "Waiting to retry…"));
      await sleep(answer.status === 429 ? answer.retryAfter : attempt * 2);
    }
  }

  async function callApi(url, body) {
    try {
      const response = await fetch(url, {
        method: "POST", credentials: "same-origin", body: JSON.stringify(body),
        headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrf },
      });
      return { status: response.status, body: await response.json().catch(() => ({})),
        retryAfter: Number(response.headers.get("Retry-After")) || 5 };
    } catch (error) {
      return { status: 0, body: {}, retryAfter: 0 };
    }
  }

  function detailOf(answer) {
    return answer.body.detail || (answer.status ? "the server answered " + answer.status : "network error");
  }

  function adopt(batchId) {
    if (run.batchId) return;
    run.batchId = batchId;
    batchLink.href = withId(form.dataset.batchUrl, batchId);
    batchLink.textContent = "Open batch " + batchId;
    batchLink.hidden = false;  // the batch page can follow a long upload from the start
  }

  function announce() {
    if (channel) channel.postMessage({ batch: run.batchId });  // an open batch page refreshes at once
  }

  // Refusals of single files, matched by position (two files may share a name).
  function settle(part, refusals) {
    for (const refusal of refusals || []) {
      const item = part[refusal.index];
      if (item && !item.outcome) refuse(item, "Refused: " + refusal.error);
    }
  }

  // A refused request: its files' own refusals, else its detail for each file. A limit that waiting
  // a little will not cure (a quota, a full batch) ends the upload, saying why, rather than waiting.
  function refuseRequest(part, answer) {
    settle(part, answer.body.refused);
    const detail = detailOf(answer);
    part.filter((item) => !item.outcome).forEach((item) => refuse(item, "Not uploaded: " + detail));
    if (stops(answer)) run.stopped = detail;
  }

  function stops(answer) {
    return !answer.body.refused && (answer.status === 413 || (answer.status === 429 && final(answer)));
  }

  // One file to storage, with its presigned POST: the policy's fields, then the file.
  function post(item, slot) {
    return new Promise((resolve) => {
      const data = new FormData();
      for (const [name, value] of Object.entries(slot.post.fields)) data.append(name, value);
      data.append("file", item.file);
      const xhr = new XMLHttpRequest();
      xhr.open("POST", slot.post.url);
      xhr.upload.addEventListener("progress", (event) => {
        if (!event.lengthComputable) return;
        item.loaded = Math.min(item.file.size, event.loaded * (item.file.size / (event.total || 1)));
        item.bar.value = item.file.size ? (100 * item.loaded) / item.file.size : 100;
        showOverall();
      });
      xhr.addEventListener("load", () => resolve({ status: xhr.status, body: {}, retryAfter: 5 }));
      xhr.addEventListener("error", () => resolve({ status: 0, body: {}, retryAfter: 0 }));
      setState(item, "sending", "Uploading…");
      xhr.send(data);
    });
  }

  async function store(item, slot) {
    const answer = await patiently(() => post(item, slot), [item]);
    if (answer.status >= 200 && answer.status < 300) return true;
    item.loaded = 0;
    refuse(item, "Not uploaded: " + (answer.status ? "storage answered " + answer.status : "network error") + ".");
    return false;
  }

  async function eachAtMost(limit, things, work) {
    let next = 0;
    const lanes = Array.from({ length: Math.min(limit, things.length) }, async () => {
      while (next < things.length) await work(things[next++]);
    });
    await Promise.all(lanes);
  }

  // Images: start (names and sizes) → post each admitted file to storage → commit what arrived.
  async function sendImages(part) {
    const files = [];
    for (const item of part) {
      setState(item, "sending", "Preparing…");
      files.push({ name: item.file.name, size: item.file.size });
    }
    const startUrl = run.batchId ? withId(form.dataset.startIntoUrl, run.batchId) : form.dataset.startUrl;
    const started = await patiently(() => callApi(startUrl, { files }), part);
    if (started.status !== 201) return refuseRequest(part, started);
    adopt(started.body.id);
    settle(part, started.body.refused);
    const arrived = [];
    await eachAtMost(STORAGE_POSTS, started.body.files, async (slot) => {
      if (await store(part[slot.index], slot)) arrived.push(slot);
    });
    if (!arrived.length) return;
    arrived.sort((a, b) => a.index - b.index);  // the batch keeps the order the files were chosen in
    arrived.forEach((slot) => setState(part[slot.index], "sending", "Recording…"));
    const body = { upload: started.body.upload, keys: arrived.map((slot) => slot.key) };
    const committed = await patiently(() => callApi(withId(form.dataset.commitUrl, run.batchId), body),
      arrived.map((slot) => part[slot.index]));
    if (committed.status !== 201) return refuseRequest(arrived.map((slot) => part[slot.index]), committed);
    settle(part, committed.body.refused);
    arrived.map((slot) => part[slot.index]).filter((item) => !item.outcome).forEach((item) => accept(item));
    announce();
  }

  // A .zip: a form upload to the API, which expands it; refusals of its members get rows of their own.
  function postArchive(url, item) {
    return new Promise((resolve) => {
      const data = new FormData();
      data.append("images", item.file, item.file.name);
      const xhr = new XMLHttpRequest();
      xhr.open("POST", url);
      xhr.setRequestHeader("X-CSRFToken", csrf);
      xhr.setRequestHeader("Accept", "application/json");
      xhr.responseType = "json";
      xhr.upload.addEventListener("progress", (event) => {
        if (!event.lengthComputable) return;
        item.loaded = Math.min(item.file.size, event.loaded);
        item.bar.value = (100 * event.loaded) / (event.total || 1);
        showOverall();
      });
      xhr.addEventListener("load", () => resolve({
        status: xhr.status, body: xhr.response || {}, retryAfter: Number(xhr.getResponseHeader("Retry-After")) || 5,
      }));
      xhr.addEventListener("error", () => resolve({ status: 0, body: {}, retryAfter: 0 }));
      setState(item, "sending", "Uploading…");
      xhr.send(data);
    });
  }

  async function sendArchive(item) {
    const url = run.batchId ? withId(form.dataset.addUrl, run.batchId) : form.dataset.createUrl;
    const answer = await patiently(() => postArchive(url, item), [item]);
    const refusals = answer.body.refused || [];
    const own = refusals.filter((refusal) => refusal.name === item.file.name).map((refusal) => refusal.error);
    for (const refusal of refusals.filter((refusal) => refusal.name !== item.file.name)) {
      run.inside += 1;
      const extra = addRow(refusal.name, null);
      extra.bar.hidden = true;
      setState(extra, "refused", "Refused (inside the archive): " + refusal.error);
    }
    if (answer.status === 201) {
      adopt(answer.body.id);
      accept(item, ["Uploaded and expanded: " + plural(answer.body.images.length, "image") + " accepted.", ...own]
        .join(" "));
      announce();
    } else if (refusals.length) {
      refuse(item, own.length ? "Refused: " + own.join(" ") : "Not uploaded: no image in it was accepted (see below).");
    } else {
      refuseRequest([item], answer);
    }
  }

  async function upload() {
    busy = true;
    run = { items: sendable(), batchId: null, stopped: "", inside: 0 };  // inside: archive members refused
    refresh();
    showOverall();
    window.addEventListener("beforeunload", warn);
    const all = parts(run.items);
    for (const [number, part] of all.entries()) {
      if (run.stopped) {
        part.forEach((item) => refuse(item, "Not uploaded: " + run.stopped));
        continue;
      }
      statusLine.textContent = "Uploading part " + (number + 1) + " of " + all.length + "…";
      if (isZip(part[0].file)) await sendArchive(part[0]);
      else await sendImages(part);
      if (number === 0 && run.batchId) refreshBatches();  // the new batch is listed at once
    }
    busy = false;
    window.removeEventListener("beforeunload", warn);
    finish();
  }

  function finish() {
    refresh();
    const accepted = run.items.filter((item) => item.outcome === "accepted").length;
    const notAccepted = items.filter((item) => item.problem || item.outcome === "refused").length + run.inside;
    if (run.stopped && !accepted) {
      statusLine.textContent = "Not uploaded: " + run.stopped;
    } else if (!run.batchId || !accepted) {
      statusLine.textContent = "No image was accepted. See the reasons below.";
    } else {
      statusLine.textContent = plural(accepted, "file") + " uploaded into batch " + run.batchId +
        (notAccepted ? "; " + notAccepted + " not accepted (see below)." : ".") +
        (run.stopped ? " " + run.stopped : "");
    }
    if (run.batchId) {
      refreshBatches();
      batchLink.focus();
    }
  }

  // "Your batches", as the server lists them now, without reloading the page.
  async function refreshBatches() {
    try {
      const response = await fetch(window.location.pathname + window.location.search,
        { credentials: "same-origin", headers: { Accept: "text/html" } });
      if (!response.ok) return;
      const page = new DOMParser().parseFromString(await response.text(), "text/html");
      const fresh = page.getElementById("batches");
      if (fresh) document.getElementById("batches").replaceWith(document.importNode(fresh, true));
    } catch (error) { /* the list stays as it was until the page is loaded again */ }
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
    reset();
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
