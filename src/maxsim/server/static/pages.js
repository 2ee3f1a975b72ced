// maxsim web page, collections of pages: each hit shows its page as a thumbnail, and the explanation
// of a hit draws the query's similarity over the page (one heatmap per query token, or their sum).
// Hooks called by app.js: maxsimPages.decorate(item, hit) and maxsimPages.explained(explanation, id).
"use strict";

const maxsimPages = (() => {
  let active = false;  // whether the collection holds pages (GET /health: modality "image")
  fetch("/health").then((r) => r.json()).then((health) => {
    active = health.modality === "image";
    document.body.classList.toggle("page-collection", active);
  }).catch(() => {});

  // The page image as an object URL (fetched with the API key: an <img src> cannot send it).
  async function imageURL(id) {
    const response = await fetch(`/documents/${encodeURIComponent(id)}/image`, { headers: headers() });
    if (!response.ok) throw new Error(`${response.status}: no page image for ${id}`);
    return URL.createObjectURL(await response.blob());
  }

  function thumbnail(id) {
    const image = document.createElement("img");
    image.className = "thumb";
    image.alt = `page ${id}`;
    imageURL(id).then((url) => { image.src = url; }).catch(showError);
    return image;
  }

  function decorate(item, hit) {
    if (!active) return;
    item.classList.add("page-hit");
    item.prepend(thumbnail(hit.id));
    const meta = hit.metadata || {}, title = item.querySelector(".title");
    if (title && meta.file !== undefined) {
      title.textContent = `${meta.file}${meta.page !== undefined ? `, page ${meta.page}` : ""}`;
    }
  }

  // One map (rows x cols, null = no patch) drawn on the canvas, one pixel per cell: transparent at
  // the map's lowest value, red at its highest (a flat map: evenly tinted). The canvas is stretched
  // over the page.
  function draw(canvas, map, token) {
    const rows = map.length, cols = map[0].length;
    const values = map.flat().filter((v) => v !== null);
    const low = Math.min(...values), span = Math.max(...values) - low;
    canvas.width = cols;
    canvas.height = rows;
    const context = canvas.getContext("2d");
    const pixels = context.createImageData(cols, rows);
    map.flat().forEach((v, i) => {
      const alpha = v === null ? 0 : span > 0 ? Math.round(200 * (v - low) / span) : 100;
      pixels.data.set([255, 40, 0, alpha], 4 * i);
    });
    context.putImageData(pixels, 0, 0);
    canvas.dataset.token = token;
  }

  function view() {
    let figure = document.getElementById("page-view");
    if (!figure) {
      figure = document.createElement("figure");
      figure.id = "page-view";
      figure.innerHTML = '<label>heatmap <select id="heat-token"></select></label>'
        + '<div class="page-frame"><img id="page-image" alt="page"><canvas id="heatmap"></canvas></div>'
        + '<figcaption class="muted">Similarity of the query with each patch of the page; hover a query '
        + "token below to see its own map.</figcaption>";
      document.getElementById("alignment").before(figure);
    }
    return figure;
  }

  function explained(e, id) {
    const old = document.getElementById("page-view");
    if (!e.page) {
      if (old) old.hidden = true;
      return;
    }
    const figure = view();
    figure.hidden = false;
    const canvas = figure.querySelector("canvas"), select = figure.querySelector("select");
    const show = (token) => draw(canvas, token === "sum" ? e.page.heatmap : e.page.heatmaps[token], token);
    select.replaceChildren(new Option("all query tokens (sum)", "sum"),
      ...e.query_tokens.map((token, q) => new Option(`#${q} ${token}`, String(q))));
    select.onchange = () => show(select.value);
    document.querySelectorAll("#alignment tbody tr").forEach((row) => {
      row.addEventListener("mouseenter", () => show(row.dataset.query));
      row.addEventListener("mouseleave", () => show(select.value));
    });
    show("sum");
    const image = figure.querySelector("img");
    image.removeAttribute("src");
    imageURL(id).then((url) => { image.src = url; }).catch(showError);
  }

  return { decorate, explained };
})();
