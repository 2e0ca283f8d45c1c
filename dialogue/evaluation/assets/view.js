// The run view's table (agora view): sorted, filtered and paged in the page.
// Drawn with the DOM's textContent only: no model text is ever parsed as HTML.
const data = JSON.parse(document.getElementById("data").textContent);
const runs = data.labels.map((label, i) => ({label, key: String(i)}));
const cellKeys = [];
for (const row of data.rows) for (const run of Object.values(row.runs))
  for (const k of Object.keys(run)) if (!["tree", "page"].includes(k) && !cellKeys.includes(k)) cellKeys.push(k);
const numeric = new Set(["c->w", "w->c", "unreadable", "failed", "pairs"]);
const columns = [{key: "question", label: "question"}, {key: "gold", label: "gold"}];
for (const run of runs) {
  columns.push({key: "tree", run: run.key, label: "tree"});
  for (const k of cellKeys) columns.push({key: k, run: run.key, label: k});
}
const value = (row, col) => col.run === undefined ? row[col.key] : (row.runs[col.run] || {})[col.key];
const filters = [{label: "all trees", test: () => true}];
const many = runs.length > 1;
for (const run of runs) {
  const of = many ? " (" + run.label + ")" : "";
  const has = (k) => (row) => ((row.runs[run.key] || {})[k] || 0) > 0;
  filters.push({label: "flipped correct -> wrong" + of, test: has("c->w")});
  filters.push({label: "flipped wrong -> correct" + of, test: has("w->c")});
  filters.push({label: "unreadable turns" + of, test: has("unreadable")});
  filters.push({label: "failed turns" + of, test: has("failed")});
  filters.push({label: "pairs mined" + of, test: has("pairs")});
}
const select = document.getElementById("filter");
filters.forEach((f, i) => {
  const o = document.createElement("option"); o.value = i; o.textContent = f.label; select.append(o);
});
let sortCol = null, sortDir = 1, page = 0, shown = data.rows;

function head() {
  const thead = document.querySelector("#trees thead");
  if (many) {
    const top = thead.insertRow();
    const blank = document.createElement("th"); blank.colSpan = 2; blank.className = "group"; top.append(blank);
    for (const run of runs) {
      const th = document.createElement("th"); th.colSpan = cellKeys.length + 1; th.className = "group";
      th.textContent = run.label; top.append(th);
    }
  }
  const tr = thead.insertRow();
  columns.forEach((col, i) => {
    const th = document.createElement("th"); th.textContent = col.label; th.dataset.col = i;
    th.addEventListener("click", () => { sortDir = sortCol === i ? -sortDir : 1; sortCol = i; update(); });
    tr.append(th);
  });
}

function update() {
  const text = document.getElementById("search").value.toLowerCase();
  const test = filters[Number(select.value)].test;
  shown = data.rows.filter((row) => test(row) && row.question.toLowerCase().includes(text));
  if (sortCol !== null) {
    const col = columns[sortCol];
    shown = [...shown].sort((a, b) => {
      const x = value(a, col), y = value(b, col);
      if (x === y) return 0;
      if (x === undefined) return 1;
      if (y === undefined) return -1;
      return (typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y))) * sortDir;
    });
  }
  const pages = Math.max(1, Math.ceil(shown.length / data.page_size));
  page = Math.min(page, pages - 1);
  draw(pages);
}

function draw(pages) {
  const body = document.querySelector("#trees tbody");
  body.replaceChildren();
  for (const row of shown.slice(page * data.page_size, (page + 1) * data.page_size)) {
    const tr = body.insertRow();
    tr.className = "tree";
    for (const col of columns) {
      const td = tr.insertCell();
      const v = value(row, col);
      if (col.key === "question" || col.key === "tree") td.className = col.key;
      if (numeric.has(col.key)) td.className = "num" + (v > 0 && col.key !== "pairs" ? " bad" : "");
      if (col.key === "tree" && v !== undefined) {
        const a = document.createElement("a"); a.href = row.runs[col.run].page; a.textContent = v; td.append(a);
      } else {
        td.textContent = v === undefined ? "" : String(v);
      }
    }
    const first = runs.find((run) => row.runs[run.key]);
    tr.addEventListener("click", (e) => { if (e.target.tagName !== "A") location.href = row.runs[first.key].page; });
  }
  document.getElementById("count").textContent = shown.length + " of " + data.rows.length + " questions";
  document.getElementById("pageno").textContent = " page " + (page + 1) + " of " + pages + " ";
}

document.getElementById("search").addEventListener("input", () => { page = 0; update(); });
select.addEventListener("change", () => { page = 0; update(); });
document.getElementById("prev").addEventListener("click", () => { if (page > 0) { page--; update(); } });
document.getElementById("next").addEventListener("click", () => { page++; update(); });
head();
update();
