// maxsim web page: search (with a JSON metadata filter), per-query-token highlights from the MaxSim
// alignment, one-hit explanation opened at the best passage.
"use strict";

const $ = (id) => document.getElementById(id);
const color = (q) => `hsl(${Math.round((q * 137.508) % 360)} 85% 78%)`;
// A pick scoring under DIM x the query's best pick is dimmed: it contributes little to the match.
const DIM = 0.6;
let hybridShown = false;  // whether the shown hits carry fused scores

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = $("api-key").value || sessionStorage.getItem("maxsim-key");
  if (key) h.Authorization = `Bearer ${key}`;
  return h;
}

async function call(method, path, body) {
  const response = await fetch(path, { method, headers: headers(), body: body && JSON.stringify(body) });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const detail = typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail || data);
    throw new Error(`${response.status}: ${detail}`);
  }
  return data;
}

function showError(error) {
  $("error").textContent = error ? String(error.message || error) : "";
  $("error").hidden = !error;
}

// Per query vector q: whether its pick scores under DIM x the best pick of the explanation e.
function weakPicks(e) {
  const best = Math.max(...e.alignment.map((step) => step.score));
  return e.alignment.map((step) => best > 0 && step.score < DIM * best);
}

// text[from, to) with marks: spans = [{start, end, queries: [query vector indices]}], offsets into
// the whole text; a mark whose every query's pick is weak is dimmed.
function marked(text, spans, weak, from = 0, to = text.length) {
  const out = document.createDocumentFragment();
  let at = from;
  for (const span of [...spans].sort((a, b) => a.start - b.start)) {
    if (span.start < at || span.end > to) continue;
    out.append(text.slice(at, span.start));
    const mark = document.createElement("mark");
    mark.textContent = text.slice(span.start, span.end);
    mark.style.background = color(span.queries[0]);
    mark.dataset.queries = span.queries.join(" ");
    mark.classList.toggle("weak", span.queries.every((q) => weak[q]));
    mark.title = `picked by query token${span.queries.length > 1 ? "s" : ""} ${span.queries.map((q) => "#" + q).join(", ")}`;
    out.append(mark);
    at = span.end;
  }
  out.append(text.slice(at, to));
  return out;
}

function hitElement(hit, rank, query, fused) {
  const item = document.createElement("article");
  item.className = "hit";
  item.dataset.id = hit.id;
  const head = document.createElement("div");
  head.className = "hit-head";
  const title = hit.metadata && typeof hit.metadata.title === "string" ? hit.metadata.title : "";
  head.innerHTML = '<span class="rank"></span><span class="hit-id"></span><span class="score-kind"></span>'
    + '<span class="score"></span><span class="muted title"></span><button type="button" class="explain">Explain</button>';
  head.querySelector(".rank").textContent = `${rank}.`;
  head.querySelector(".hit-id").textContent = hit.id;
  head.querySelector(".score-kind").textContent = fused ? "fused" : "";
  head.querySelector(".score").textContent = hit.score.toFixed(3);
  head.querySelector(".score").title = fused
    ? "reciprocal-rank fusion of the BM25 and MaxSim ranks (not a MaxSim score)" : "MaxSim of the best passage";
  head.querySelector(".title").textContent = title;
  head.querySelector(".explain").addEventListener("click", () => explain(query, hit.id));
  const passage = document.createElement("p");
  passage.className = "passage";
  const best = (hit.passage && hit.passage.text) || hit.text || "";
  passage.textContent = best.slice(0, 240) + (best.length > 240 ? "…" : "");
  const where = document.createElement("div");
  where.className = "muted where";
  if (hit.passage && hit.text && hit.passage.end - hit.passage.start < hit.text.length) {
    where.textContent = `best passage: #${hit.passage.index + 1}, characters ${hit.passage.start}–${hit.passage.end} of ${hit.text.length}`;
  }
  const terms = document.createElement("div");
  terms.className = "terms";
  item.append(head, where, passage, terms);
  call("POST", "/explain", { query, id: hit.id }).then((e) => {
    passage.replaceChildren(marked(e.excerpt.text, e.excerpt.highlights, weakPicks(e)));
    terms.textContent = e.matched.length ? "matched: " : "";
    e.matched.forEach((term) => {
      const chip = document.createElement("span");
      chip.className = "term";
      chip.textContent = term;
      terms.append(chip);
    });
    item.classList.add("explained");
  }).catch(showError);
  maxsimPages.decorate(item, hit);
  return item;
}

function filterValue() {
  const text = $("filter").value.trim();
  if (!text) return null;
  let value;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new Error(`filter is not valid JSON (${error.message}): write an object such as {"lang": "en"}.`);
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new Error('filter must be a JSON object such as {"lang": "en"}.');
  }
  return value;
}

async function search(event) {
  event.preventDefault();
  showError(null);
  const query = $("query").value.trim();
  if (!query) return;
  if ($("api-key").value) sessionStorage.setItem("maxsim-key", $("api-key").value);
  const results = $("results");
  results.replaceChildren();
  results.setAttribute("aria-busy", "true");
  try {
    const body = { queries: [query], k: Number($("k").value) || 10, hybrid: $("hybrid").checked };
    const filter = filterValue();
    if (filter) body.filter = filter;
    const data = await call("POST", "/search", body);
    const hits = data.results[0];
    hybridShown = body.hybrid;
    if (!hits.length) results.textContent = "No documents.";
    hits.forEach((hit, i) => results.append(hitElement(hit, i + 1, query, body.hybrid)));
  } catch (error) {
    showError(error);
  } finally {
    results.removeAttribute("aria-busy");
  }
}

// The whole text with the picks marked and the best passage wrapped in #best-passage.
function documentWithPassage(e, weak) {
  const spans = e.alignment.map((step, q) => ({ step, q }))
    .filter(({ step }) => step.document_index !== null && e.document_spans[step.document_index])
    .map(({ step, q }) => ({ start: e.document_spans[step.document_index][0], end: e.document_spans[step.document_index][1], queries: [q] }));
  const merged = new Map();
  spans.forEach((s) => {
    const key = `${s.start}:${s.end}`;
    if (merged.has(key)) merged.get(key).queries.push(...s.queries); else merged.set(key, s);
  });
  const all = [...merged.values()];
  const inside = document.createElement("span");
  inside.id = "best-passage";
  inside.className = "best-passage";
  inside.append(marked(e.text, all, weak, e.passage.start, e.passage.end));
  const out = document.createDocumentFragment();
  out.append(e.text.slice(0, e.passage.start), inside, e.text.slice(e.passage.end));
  return out;
}

async function explain(query, id) {
  showError(null);
  try {
    const e = await call("POST", "/explain", { query, id });
    const weak = weakPicks(e);
    $("explained-id").textContent = id;
    $("explained-score").textContent = e.score.toFixed(3);
    $("explained-fused").hidden = !hybridShown;
    $("explained-passage").textContent = e.passage.end - e.passage.start < e.text.length
      ? `Best passage: #${e.passage.index + 1}, characters ${e.passage.start}–${e.passage.end} of ${e.text.length} (outlined below).`
      : "";
    $("explained-text").replaceChildren(documentWithPassage(e, weak));
    const best = Math.max(...e.alignment.map((s) => s.score), 1e-9);
    const rows = e.alignment.map((step, q) => {
      const row = document.createElement("tr");
      row.dataset.query = q;
      row.classList.toggle("weak", weak[q]);
      row.innerHTML = '<td><span class="term"></span></td><td></td><td></td><td><div class="bar"></div></td>';
      row.querySelector(".term").textContent = step.query_token;
      row.querySelector(".term").style.background = color(q);
      row.children[1].textContent = step.document_token ?? "—";
      row.children[2].textContent = step.score.toFixed(3);
      row.querySelector(".bar").style.width = `${Math.max(0, (100 * step.score) / best)}%`;
      row.addEventListener("mouseenter", () => focusQuery(q, true));
      row.addEventListener("mouseleave", () => focusQuery(q, false));
      return row;
    });
    $("alignment").tBodies[0].replaceChildren(...rows);
    $("explanation").hidden = false;
    maxsimPages.explained(e, id);
    scrollBox($("best-passage"), 0);
  } catch (error) {
    showError(error);
  }
}

// Scroll only the document box (not the page) so that element sits at `fraction` of its height.
function scrollBox(element, fraction) {
  const box = $("explained-text");
  box.scrollTop = element.offsetTop - box.clientHeight * fraction;
}

// Outline the document tokens picked by query token q; scroll the document box to the first
// (scrolling the page would move the hovered row away from the pointer).
function focusQuery(q, on) {
  let first = null;
  $("explained-text").querySelectorAll("mark").forEach((mark) => {
    const picked = mark.dataset.queries.split(" ").includes(String(q));
    mark.classList.toggle("active", on && picked);
    if (on && picked && !first) first = mark;
  });
  if (first) scrollBox(first, 0.5);
}

async function start() {
  $("search-form").addEventListener("submit", search);
  $("close-explanation").addEventListener("click", () => { $("explanation").hidden = true; });
  $("dim-percent").textContent = String(Math.round(DIM * 100));
  try {
    const health = await call("GET", "/health");
    $("status").textContent = `${health.documents} documents`;
    $("key-label").hidden = !health.auth;
  } catch (error) {
    $("status").textContent = "service unreachable";
    showError(error);
  }
}

start();
