// qaembed search page: plain JS over the server's own JSON API (/indexes, /search, /maps).
// Every text from the index is inserted with textContent (never as HTML), and only http(s) links
// become hrefs, so an answer's text cannot run script in the page.
"use strict";

const $ = (id) => document.getElementById(id);
const SNIPPET = 600;

function element(tag, attrs = {}, text = null) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  if (text !== null && text !== undefined) node.textContent = String(text);
  return node;
}

function safeLink(url, text) {
  if (typeof url === "string" && /^https?:\/\//i.test(url)) {
    const link = element("a", { href: url, rel: "noopener noreferrer", target: "_blank" }, text);
    return link;
  }
  return element("span", {}, text);
}

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
}

async function api(path, body) {
  const options = body === undefined ? {} : {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  };
  const response = await fetch(path, options);
  let payload;
  try { payload = await response.json(); } catch (e) { payload = { error: `HTTP ${response.status}` }; }
  if (!response.ok) throw new Error(payload.error || `HTTP ${response.status}`);
  return payload;
}

function renderHit(hit, otherRanks) {
  const item = element("li", { class: "hit", "data-id": hit.id, "data-rank": hit.rank });
  const title = element("div", { class: "title" });
  title.append(safeLink(hit.question_url || hit.url, hit.question_title || "(untitled question)"));
  item.append(title);
  const snippet = hit.text.length > SNIPPET ? hit.text.slice(0, SNIPPET) + "…" : hit.text;
  item.append(element("div", { class: "text" }, snippet));
  const meta = element("div", { class: "meta" });
  meta.append(element("span", { class: "rank" }, `#${hit.rank}`));
  meta.append(element("span", { class: "score" }, `score ${hit.score.toFixed(3)}`));
  meta.append(element("span", { class: "votes" }, `${hit.votes} votes`));
  if (hit.accepted) meta.append(element("span", { class: "accepted" }, "accepted"));
  if (otherRanks) {
    const other = otherRanks.get(hit.id);
    meta.append(element("span", { class: "other" }, other ? `#${other} in the other` : "only here"));
  }
  if (hit.url) meta.append(safeLink(hit.url, "answer"));
  item.append(meta);
  const attribution = element("div", { class: "attribution" });
  if (hit.author) {
    attribution.append("by ");
    attribution.append(safeLink(hit.author_url, hit.author));
  }
  const parts = [hit.license, hit.site].filter(Boolean).join(" · ");
  if (parts) attribution.append((hit.author ? ", " : "") + parts);
  item.append(attribution);
  return item;
}

function renderColumn(side, payload, otherRanks) {
  $(`title-${side}`).textContent = `${payload.index} — ${payload.model}`;
  const list = $(`results-${side}`);
  list.replaceChildren();
  const [result] = payload.results;
  if (!result.hits.length) list.append(element("li", { class: "empty" }, "no answers"));
  for (const hit of result.hits) list.append(renderHit(hit, otherRanks));
}

function ranksOf(payload) {
  return new Map(payload.results[0].hits.map((hit) => [hit.id, hit.rank]));
}

async function search(event) {
  event.preventDefault();
  const query = $("query").value.trim();
  if (!query) { showError("Type a question first."); return; }
  const k = Number.parseInt($("k").value, 10) || 5;
  const a = $("index-a").value, b = $("index-b").value;
  showError("");
  $("status").textContent = "Searching…";
  const started = performance.now();
  try {
    const requests = [api("/search", { query, k, index: a })];
    if (b) requests.push(api("/search", { query, k, index: b }));
    const [first, second] = await Promise.all(requests);
    $("column-b").hidden = !second;
    renderColumn("a", first, second ? ranksOf(second) : null);
    if (second) renderColumn("b", second, ranksOf(first));
    const ms = Math.round(performance.now() - started);
    $("status").textContent = `${first.results[0].hits.length} answers${second ? " from each index" : ""} in ${ms} ms`;
    document.body.dataset.searched = String((Number(document.body.dataset.searched) || 0) + 1);
  } catch (error) {
    $("status").textContent = "";
    showError(error.message);
  }
}

function showView(name) {
  $("search-view").hidden = name !== "search";
  $("maps-view").hidden = name !== "maps";
  $("tab-search").classList.toggle("active", name === "search");
  $("tab-maps").classList.toggle("active", name === "maps");
}

async function start() {
  try {
    const info = await api("/indexes");
    for (const index of info.indexes) {
      const label = `${index.name} (${index.documents} answers)`;
      $("index-a").append(element("option", { value: index.name }, label));
      $("index-b").append(element("option", { value: index.name }, label));
    }
    $("k").max = String(info.max_k);
    // a default over the server's limit would make the browser refuse every search until it is changed
    if (Number($("k").value) > info.max_k) $("k").value = String(info.max_k);
    if (info.indexes.length > 1) $("index-b").value = info.indexes[1].name;
    if (info.maps.length) {
      $("tab-maps").hidden = false;
      for (const name of info.maps) {
        const figure = element("figure");
        figure.append(element("img", { src: `/maps/${encodeURIComponent(name)}`, alt: name }));
        figure.append(element("figcaption", {}, name));
        $("maps").append(figure);
      }
    }
    document.body.dataset.ready = "true";
  } catch (error) {
    showError(`Cannot reach the server: ${error.message}`);
  }
  $("search-form").addEventListener("submit", search);
  $("tab-search").addEventListener("click", (e) => { e.preventDefault(); showView("search"); });
  $("tab-maps").addEventListener("click", (e) => { e.preventDefault(); showView("maps"); });
}

document.addEventListener("DOMContentLoaded", start);
