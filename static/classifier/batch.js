// One page of a batch, live: poll the status endpoint for this page (its filter, sort and page
// number), backing off while nothing changes, and keep the cards, the counts and the pager as
// the server says they are now. Images added after the page loaded (a second upload into the
// batch) get cards; cards the server renders, so the card markup lives in one template.
"use strict";

(function () {
  const cards = document.getElementById("cards");
  if (!cards || !window.fetch) return;

  const statusUrl = cards.dataset.statusUrl;
  const view = new URLSearchParams(cards.dataset.view);  // this page's status filter and sort
  const pageNumber = Number(cards.dataset.page);
  const pageSize = Number(cards.dataset.pageSize);
  const live = document.getElementById("live");
  const overall = document.getElementById("overall");
  const retryForm = document.getElementById("retry-form");
  const empty = document.getElementById("empty");
  const FIRST_DELAY = 1000;
  const MAX_DELAY = 15000;
  // A finished batch can still grow (another upload into it), so it is polled, slowly.
  const IDLE_DELAY = 30000;
  let delay = FIRST_DELAY;
  let since = cards.dataset.since || null;  // the page shows everything up to its render time
  let timer = null;
  let stopped = false;
  let polling = false;
  let finished = false;
  let fullRead = false;  // once the batch finishes, one read without `since` catches what a skewed clock hid

  function statusQuery(extra) {
    const params = new URLSearchParams(view);
    params.set("page", pageNumber);
    for (const [key, value] of Object.entries(extra)) params.set(key, value);
    return statusUrl + "?" + params;
  }

  async function getStatus(extra) {
    const response = await fetch(statusQuery(extra), { headers: { Accept: "application/json" }, credentials: "same-origin" });
    if (response.status === 404 || response.status === 403) {  // the batch is gone, or the session
      stopped = true;
      return null;
    }
    if (!response.ok) throw new Error("status " + response.status);
    return response.json();
  }

  function cardFrom(html) {
    const holder = document.createElement("template");
    holder.innerHTML = html.trim();
    return holder.content.firstElementChild;
  }

  const arrived = new Map();  // cards made from the server's HTML, placed by arrange()

  // Bring one card up to date; true when it is new or its status changed.
  function apply(state) {
    const fresh = cardFrom(state.html);
    const card = document.getElementById(fresh.id);
    if (!card) {
      arrived.set(state.id, fresh);
      return true;
    }
    const expired = card.querySelector("img[data-expired]");
    if (card.dataset.signature === fresh.dataset.signature) {
      if (expired && state.thumbnail) {  // the same card with a fresh link
        delete expired.dataset.expired;
        expired.src = state.thumbnail;
      }
      return false;
    }
    const changed = card.dataset.status !== fresh.dataset.status;
    const open = card.querySelector("details.top5[open]");
    card.dataset.signature = fresh.dataset.signature;
    card.dataset.status = fresh.dataset.status;  // in place: the element (and focus around it) stays
    card.replaceChildren(...fresh.childNodes);
    if (open) card.querySelector("details.top5").open = true;
    return changed;
  }

  // Put the page's cards in the server's order, drop those no longer on this page, and
  // return the ids of cards this page lacks and has no state for (ask for them by id).
  function arrange(ids) {
    const wanted = new Set(ids);
    for (const card of [...cards.children]) {
      if (!wanted.has(card.dataset.image)) card.remove();
    }
    const missing = [];
    let previous = null;
    for (const id of ids) {
      const card = document.getElementById("image-" + id) || arrived.get(id);
      if (!card) {
        missing.push(id);
        continue;
      }
      arrived.delete(id);
      const placed = previous ? previous.nextElementSibling === card : cards.firstElementChild === card;
      if (!placed) {
        if (previous) previous.after(card);
        else cards.prepend(card);
      }
      previous = card;
    }
    empty.hidden = cards.children.length > 0;
    return missing;
  }

  function showCounts(counts) {
    for (const [status, count] of Object.entries(counts)) {
      const cell = document.querySelector('[data-count="' + status + '"]');
      if (cell) cell.textContent = count;
    }
    const finished = counts.done + counts.failed;
    overall.max = counts.total || 1;
    overall.value = finished;
    document.getElementById("total").textContent = counts.total + (counts.total === 1 ? " image" : " images");
    const text = finished + " of " + counts.total + " finished" + (counts.failed ? ", " + counts.failed + " failed" : "");
    if (live.textContent !== text) live.textContent = text;  // aria-live: announced on change only
    if (retryForm) retryForm.hidden = !counts.failed;
  }

  function pageLink(number) {
    const params = new URLSearchParams(view);
    if (number > 1) params.set("page", number);
    return "?" + params;
  }

  function showPage(page) {
    for (const pager of document.querySelectorAll("[data-pager]")) {
      pager.hidden = page.pages < 2;
      pager.querySelector("[data-page-count]").textContent = page.pages;
      for (const link of pager.querySelectorAll('[data-to="next"], [data-to="last"]')) {
        link.hidden = pageNumber >= page.pages;
        link.href = pageLink(link.dataset.to === "next" ? pageNumber + 1 : page.pages);
      }
    }
    const showing = document.getElementById("showing");
    const start = (pageNumber - 1) * pageSize + 1;
    showing.textContent = page.ids.length ? "Showing " + start + "–" + (start + page.ids.length - 1) + " of " +
      page.count + (view.get("status") ? " " + view.get("status") : "") : "";
  }

  function schedule() {
    clearTimeout(timer);
    if (!stopped && !document.hidden) timer = setTimeout(poll, delay);
  }

  async function poll() {
    if (polling) return;
    polling = true;
    try {
      const data = await getStatus(since && !fullRead ? { since: since } : {});
      if (!data) return;
      fullRead = false;
      let changed = data.images.map(apply).filter(Boolean).length;
      const missing = arrange(data.page.ids);
      if (missing.length) {
        const more = await getStatus({ ids: missing.join(",") });
        if (more) changed += more.images.map(apply).filter(Boolean).length;
        arrange(data.page.ids);
      }
      showCounts(data.counts);
      showPage(data.page);
      since = data.now;
      fullRead = data.finished && !finished;
      finished = data.finished;
      delay = fullRead ? 0 : changed ? FIRST_DELAY : Math.min(delay * 1.6, finished ? IDLE_DELAY : MAX_DELAY);
    } catch (error) {
      delay = Math.min(Math.max(delay, FIRST_DELAY) * 2, MAX_DELAY);
    } finally {
      polling = false;
      schedule();
    }
  }

  function pollNow() {
    if (stopped) return;
    delay = FIRST_DELAY;
    clearTimeout(timer);
    poll();
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
        const data = await getStatus({ ids: ids.slice(start, start + 50).join(",") });
        if (data) data.images.forEach(apply);
      } catch (error) { /* these cards keep a broken image until the page is reloaded */ }
    }
  }

  function thumbnailFailed(img) {
    const card = img.closest(".card.image");
    if (img.tagName !== "IMG" || img.dataset.expired || !card || refreshed.has(card.id)) return;
    img.dataset.expired = "1";
    refreshed.add(card.id);
    expired.add(card.dataset.image);
    refreshing = refreshing || setTimeout(refreshThumbnails, 200);
  }

  cards.addEventListener("error", (event) => thumbnailFailed(event.target), true);
  // A load that failed before this script ran fired its error event unheard.
  for (const img of cards.querySelectorAll("img")) {
    if (img.complete && img.naturalWidth === 0) thumbnailFailed(img);
  }

  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) pollNow();
  });

  // The uploader says when it added images to a batch (another tab of this browser).
  if (window.BroadcastChannel) {
    new BroadcastChannel("imgsite-uploads").addEventListener("message", (event) => {
      if (event.data && String(event.data.batch) === cards.dataset.batch) pollNow();
    });
  }

  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (!form.matches("form.delete-batch, form.delete-image")) return;
    const what = form.classList.contains("delete-batch") ? "this batch and all its images" : "this image";
    if (!window.confirm("Delete " + what + "? This cannot be undone.")) event.preventDefault();
  });

  const sort = document.getElementById("sort");
  sort.addEventListener("change", () => sort.form.submit());
  document.getElementById("sort-button").hidden = true;

  finished = Number(document.querySelector('[data-count="queued"]').textContent) +
    Number(document.querySelector('[data-count="processing"]').textContent) === 0;
  if (finished) delay = MAX_DELAY / 3;
  schedule();
})();
