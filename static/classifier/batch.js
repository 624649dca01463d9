// One batch, live: poll the status endpoint, backing off while nothing changes, and update
// the cards, the counts and the overall bar in place. Stops once every image is final.
"use strict";

(function () {
  const cards = document.getElementById("cards");
  if (!cards || !window.fetch) return;

  const statusUrl = cards.dataset.statusUrl;
  const live = document.getElementById("live");
  const overall = document.getElementById("overall");
  const retryForm = document.getElementById("retry-form");
  const FIRST_DELAY = 1000;
  const MAX_DELAY = 15000;
  let delay = FIRST_DELAY;
  let since = cards.dataset.since || null;  // the page shows everything up to its render time
  let timer = null;
  let stopped = false;

  function percent(score) {
    return Math.round(score * 100) + "%";
  }

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function setThumbnail(card, state) {
    const thumb = card.querySelector(".thumb");
    const img = thumb.querySelector("img");
    if (!state.thumbnail) {
      const placeholder = thumb.querySelector(".placeholder");
      if (placeholder) placeholder.setAttribute("aria-label", state.status === "failed" ? "No preview" : "Thumbnail not ready yet");
      return;
    }
    if (img && !img.dataset.expired) return;  // a fresh URL each poll would reload the image
    const name = card.querySelector(".name").textContent;
    const fresh = element("img");
    fresh.alt = "Thumbnail of " + name;
    fresh.src = state.thumbnail;
    thumb.replaceChildren(fresh);
  }

  function setPredictions(card, predictions) {
    const label = card.querySelector(".label");
    const top5 = card.querySelector(".top5");
    label.hidden = top5.hidden = !predictions.length;
    if (!predictions.length) return;
    label.replaceChildren(element("strong", "", predictions[0].label), " ",
      element("span", "score", percent(predictions[0].score)));
    const rows = predictions.map((prediction) => {
      const bar = element("meter", "bar");
      bar.setAttribute("aria-hidden", "true");
      bar.min = 0;
      bar.max = 1;
      bar.value = prediction.score;
      const row = element("li");
      const name = element("span", "top-label", prediction.label);
      name.title = prediction.label;
      row.append(name, bar, element("span", "pct", percent(prediction.score)));
      return row;
    });
    top5.querySelector("ol").replaceChildren(...rows);
  }

  function update(state) {
    const card = document.getElementById("image-" + state.id);
    if (!card) return false;
    const signature = [state.status, state.error, state.predictions.length, Boolean(state.thumbnail)].join("|");
    const expired = card.querySelector("img[data-expired]");
    if (card.dataset.signature === signature && !expired) return false;
    const changed = card.dataset.status !== state.status;
    card.dataset.signature = signature;
    card.dataset.status = state.status;
    const badge = card.querySelector(".badge");
    badge.className = "badge " + state.status;
    badge.textContent = state.status_display;
    const error = card.querySelector(".error");
    error.textContent = state.error;
    error.hidden = state.status !== "failed";
    setPredictions(card, state.predictions);
    setThumbnail(card, state);
    return changed;
  }

  function showCounts(counts) {
    for (const [status, count] of Object.entries(counts)) {
      const cell = document.querySelector('[data-count="' + status + '"]');
      if (cell) cell.textContent = count;
    }
    const finished = counts.done + counts.failed;
    overall.max = counts.total || 1;
    overall.value = finished;
    const text = finished + " of " + counts.total + " finished" + (counts.failed ? ", " + counts.failed + " failed" : "");
    if (live.textContent !== text) live.textContent = text;  // aria-live: announced on change only
    if (retryForm) retryForm.hidden = !counts.failed;
  }

  function schedule() {
    clearTimeout(timer);
    if (!stopped && !document.hidden) timer = setTimeout(poll, delay);
  }

  async function poll(full) {
    const query = since && full !== true ? "?since=" + encodeURIComponent(since) : "";
    try {
      const response = await fetch(statusUrl + query, { headers: { Accept: "application/json" }, credentials: "same-origin" });
      if (response.status === 404 || response.status === 403) { stopped = true; return; }
      if (!response.ok) throw new Error("status " + response.status);
      const data = await response.json();
      const changed = data.images.map(update).filter(Boolean).length;
      showCounts(data.counts);
      since = data.now;
      if (data.finished) {
        // One last full read catches anything a clock-skewed "since" could have hidden.
        if (full === true) { stopped = true; return; }
        delay = 0;
        timer = setTimeout(() => poll(true), 0);
        return;
      }
      delay = changed ? FIRST_DELAY : Math.min(delay * 1.6, MAX_DELAY);
    } catch (error) {
      delay = Math.min(Math.max(delay, FIRST_DELAY) * 2, MAX_DELAY);
    }
    schedule();
  }

  // Presigned thumbnail URLs expire; fetch fresh ones once if a late (lazy) load fails. The
  // failures of a scroll are gathered, and only those cards are asked for, 50 per request.
  const expired = new Set();
  const refreshed = new Set();  // once per card: a thumbnail that fails again is broken, not expired
  let refreshing = null;

  async function refreshThumbnails() {
    const ids = [...expired];
    expired.clear();
    refreshing = null;
    for (let start = 0; start < ids.length; start += 50) {
      try {
        const query = "?ids=" + ids.slice(start, start + 50).join(",");
        const response = await fetch(statusUrl + query, { headers: { Accept: "application/json" }, credentials: "same-origin" });
        if (response.ok) (await response.json()).images.forEach(update);
      } catch (error) { /* these cards keep a broken image until the page is reloaded */ }
    }
  }

  cards.addEventListener("error", (event) => {
    const img = event.target;
    const card = img.closest('[id^="image-"]');
    if (img.tagName !== "IMG" || img.dataset.expired || !card || refreshed.has(card.id)) return;
    img.dataset.expired = "1";
    refreshed.add(card.id);
    expired.add(card.id.slice("image-".length));
    refreshing = refreshing || setTimeout(refreshThumbnails, 200);
  }, true);

  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && !stopped) { delay = FIRST_DELAY; poll(); }
  });

  document.querySelectorAll("form.delete-batch, form.delete-image").forEach((form) => {
    form.addEventListener("submit", (event) => {
      const what = form.classList.contains("delete-batch") ? "this batch and all its images" : "this image";
      if (!window.confirm("Delete " + what + "? This cannot be undone.")) event.preventDefault();
    });
  });

  const open = Number(document.querySelector('[data-count="queued"]').textContent) +
    Number(document.querySelector('[data-count="processing"]').textContent);
  if (open) schedule();
})();
