"use strict";
// The page of `landscape-av view`. Everything read from the corpus (keys, ids, the free text of
// manifests and source lists) enters the page as text (textContent, attribute values), never as
// HTML, and only http(s) URLs become links. Served, the data comes from the JSON under api/; in a
// static export (`view --export`) it is inline, in data.js (window.LANDSCAPE_VIEW).

const EXPORTED = window.LANDSCAPE_VIEW || null;
const PAGE_SIZE = 48;
const filters = { class: "", split: "", q: "" };
let observer = null;
let generation = 0; // the latest rendering of the clips; an older one that finishes later is dropped

const $ = (selector) => document.querySelector(selector);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function fmt(value, digits) {
  if (value === null || value === undefined || value === "") return "–";
  if (typeof value === "number" && digits !== undefined) return value.toFixed(digits);
  if (typeof value === "number") return value.toLocaleString("en");
  return String(value);
}

function bytes(n) {
  const units = [[1e12, "TB"], [1e9, "GB"], [1e6, "MB"], [1e3, "kB"]];
  for (const [size, unit] of units) if (n >= size) return `${(n / size).toFixed(n >= 10 * size ? 0 : 1)} ${unit}`;
  return `${n} B`;
}

function link(url, text) {
  let safe = false;
  try {
    safe = ["http:", "https:"].includes(new URL(String(url)).protocol);
  } catch (err) {
    safe = false;
  }
  const label = text === undefined ? String(url ?? "") : text;
  return safe ? el("a", { href: url, target: "_blank", rel: "noopener noreferrer" }, label) : el("span", {}, label);
}

function markdownText(text) {
  // A paragraph of markdown as text, `code` spans as <code>; nothing in it is read as HTML.
  const node = el("p");
  String(text).split("`").forEach((part, i) => node.append(i % 2 ? el("code", {}, part) : part));
  return node;
}

// --- data: the server's api/, or an export's inline copy filtered alike -------------------------

function matches(clip, f) {
  // The filters of CorpusView.select (view.py): class and split exactly, q within the source id.
  const q = (f.q || "").toLowerCase();
  return (!f.class || clip.class === f.class) && (!f.split || clip.split === f.split) &&
    (!q || String(clip.source_id).toLowerCase().includes(q));
}

const fromExport = {
  summary: () => EXPORTED.summary,
  failures: () => ({ failures: EXPORTED.failures }),
  groups: (f) => {
    const counts = new Map();
    for (const clip of EXPORTED.clips.filter((c) => matches(c, f))) {
      const group = JSON.stringify([clip.class, clip.split]);
      counts.set(group, (counts.get(group) || 0) + 1);
    }
    return { groups: [...counts].map(([g, n]) => ({ class: JSON.parse(g)[0], split: JSON.parse(g)[1], clips: n })) };
  },
  clips: (f) => {
    const selected = EXPORTED.clips.filter((c) => matches(c, f));
    const offset = Number(f.offset || 0);
    const limit = Number(f.limit || PAGE_SIZE);
    return { total: selected.length, offset, limit, clips: selected.slice(offset, offset + limit) };
  },
};

async function api(name, params = {}) {
  if (EXPORTED) return fromExport[name](params);
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) if (value !== "" && value !== undefined) query.set(key, value);
  const response = await fetch(`api/${name}?${query}`);
  if (!response.ok) throw new Error(`api/${name}: HTTP ${response.status}`);
  return response.json();
}

// --- summary ------------------------------------------------------------------------------------

function renderSummary(s) {
  document.title = s.title;
  $("#title").textContent = s.title;
  const exported = s.export ? ` · static export: ${fmt(s.export.clips)} of ${fmt(s.export.of)} clips` +
    (s.export.preview_seconds ? `, previews of ${s.export.preview_seconds} s` : ", thumbnails only") : "";
  $("#location").textContent = s.location + exported;
  const prose = $("#card-summary");
  for (const paragraph of String(s.summary || "").split(/\n\s*\n/)) {
    if (paragraph.trim()) prose.append(markdownText(paragraph.replace(/\s*\n\s*/g, " ")));
  }
  if (s.card) prose.append(el("p", {}, el("a", { href: s.card }, "The whole dataset card (markdown)")));
  const t = s.stats.totals;
  const totals = [
    ["clips", fmt(t.clips)], ["hours", fmt(t.hours, 2)], ["sources used", `${fmt(t.sources_used)} of ${fmt(t.sources)}`],
    ["shards", fmt(t.shards)], ["size", bytes(t.bytes)], ["failed or rejected", fmt(t.failures)],
  ];
  $("#totals").replaceChildren(...totals.map(([name, value]) => el("div", {}, el("dt", {}, name), el("dd", {}, value))));
  const rows = s.stats.per_class.filter((r) => r.train.sources + r.test.sources + Object.keys(r.rejected).length > 0);
  const head = ["class", "train clips", "test clips", "sources used", "hours", "rejected"];
  $("#class-table").replaceChildren(
    el("thead", {}, el("tr", {}, ...head.map((h) => el("th", {}, h)))),
    el("tbody", {}, ...rows.map((r) => el("tr", {},
      el("td", {}, r.class), el("td", {}, fmt(r.train.clips)), el("td", {}, fmt(r.test.clips)),
      el("td", {}, fmt(r.train.sources_used + r.test.sources_used)), el("td", {}, fmt(r.train.hours + r.test.hours, 3)),
      el("td", {}, Object.entries(r.rejected).map(([k, n]) => `${k} ${n}`).join(", ") || "0"))))
  );
  $("#figures").replaceChildren(...s.figures.map((f) => el("figure", {},
    el("a", { href: f.url, target: "_blank" }, el("img", { src: f.url, alt: f.caption, loading: "lazy" })),
    el("figcaption", {}, f.caption))));
  const problems = $("#problems");
  problems.replaceChildren(...s.problems.map((p) => el("li", {}, p)));
  problems.hidden = s.problems.length === 0;
  for (const [select, values] of [[$("#filter-class"), s.classes], [$("#filter-split"), s.splits]]) {
    select.append(...values.map((v) => el("option", { value: v }, v)));
  }
}

// --- clips: a section per class and split, a page of thumbnails each, loaded when near view ------

async function renderGroups() {
  const mine = ++generation;
  const asked = { ...filters };
  const { groups } = await api("groups", asked);
  if (mine !== generation) return;
  if (observer) observer.disconnect();
  observer = new IntersectionObserver((entries) => {
    for (const entry of entries) {
      if (entry.isIntersecting) {
        observer.unobserve(entry.target);
        loadPage(entry.target, 0);
      }
    }
  }, { rootMargin: "200px 0px" });
  const sections = groups.map((g) => {
    const section = el("section", { class: "group", "data-class": g.class, "data-split": g.split, "data-clips": g.clips },
      el("h3", {}, g.class, " ", el("span", { class: "tag" }, g.split), " ", el("span", { class: "muted" }, `${fmt(g.clips)} clip${g.clips === 1 ? "" : "s"}`)),
      el("div", { class: "grid" }), el("nav", { class: "pager" }));
    section.query = { class: g.class, split: g.split, q: asked.q };
    return section;
  });
  const total = groups.reduce((n, g) => n + g.clips, 0);
  $("#match-count").textContent = `${fmt(total)} clip${total === 1 ? "" : "s"}`;
  $("#groups").replaceChildren(...(sections.length ? sections : [el("p", { class: "muted" }, "No clip matches.")]));
  // Until its page loads, a section takes about the room of its thumbnails, so that only the
  // sections near the screen load (CSSOM styles, which the Content-Security-Policy allows).
  const columns = Math.max(1, Math.floor($("#groups").clientWidth / 180));
  for (const section of sections) {
    const rows = Math.ceil(Math.min(Number(section.dataset.clips), PAGE_SIZE) / columns);
    section.querySelector(".grid").style.minHeight = `${rows * 190}px`;
    observer.observe(section);
  }
}

async function loadPage(section, offset) {
  const page = await api("clips", { ...section.query, offset, limit: PAGE_SIZE });
  const grid = section.querySelector(".grid");
  grid.replaceChildren(...page.clips.map(clipCard));
  grid.style.minHeight = "";
  const pager = section.querySelector(".pager");
  pager.replaceChildren();
  if (page.total > PAGE_SIZE) {
    const last = Math.min(offset + PAGE_SIZE, page.total);
    pager.append(
      el("button", { type: "button", disabled: offset === 0, onclick: () => loadPage(section, Math.max(0, offset - PAGE_SIZE)) }, "‹ previous"),
      el("span", {}, `${fmt(offset + 1)}–${fmt(last)} of ${fmt(page.total)}`),
      el("button", { type: "button", disabled: last >= page.total, onclick: () => loadPage(section, offset + PAGE_SIZE) }, "next ›"));
    if (offset > 0) section.scrollIntoView({ block: "start" });
  }
  section.dataset.loaded = String(offset);
}

function clipCard(clip) {
  const width = 160;
  const height = Math.round((width * (clip.height || 9)) / (clip.width || 16));
  const thumb = clip.members.jpg
    ? el("img", { src: clip.members.jpg, alt: "", loading: "lazy", decoding: "async", width, height })
    : el("span", { class: "nothumb" }, "no thumbnail");
  return el("button", { type: "button", class: "clip", "data-key": clip.key, title: `${clip.key}: play`, onclick: () => openClip(clip) },
    thumb, el("span", { class: "key" }, clip.key),
    el("span", { class: "meta" }, `${fmt(clip.start, 1)}–${fmt(clip.end, 1)} s · ${fmt(clip.loudness_db, 1)} dBFS · motion ${fmt(clip.motion, 4)}`));
}

// --- the player ---------------------------------------------------------------------------------

function fieldRows(prefix, record) {
  return Object.entries(record).map(([name, value]) =>
    el("tr", {}, el("th", {}, prefix + name), el("td", {}, name === "url" ? link(value) : fmt(value))));
}

function openClip(clip) {
  const dialog = $("#player");
  const video = $("#player-video");
  const message = $("#player-message");
  $("#player-title").textContent = clip.key;
  message.textContent = "";
  $("#player-audio").replaceChildren();
  const m = clip.members;
  const actions = [];
  if (m.flac) {
    actions.push(el("button", { type: "button", onclick: () => {
      const audio = el("audio", { controls: true, src: m.flac });
      $("#player-audio").replaceChildren(audio);
      video.pause();
      audio.play().catch((err) => { message.textContent = `The FLAC did not start: ${err.message}`; });
    } }, "Play the FLAC"));
  }
  if (m.json) actions.push(el("a", { href: m.json, target: "_blank" }, "json"));
  if (m.mp4) actions.push(el("a", { href: m.mp4, download: `${clip.key}.mp4` }, "mp4"));
  if (clip.source && clip.source.url) actions.push(link(clip.source.url, "source video"));
  $("#player-actions").replaceChildren(...actions);
  const { members, source, ...fields } = clip;
  $("#player-fields").replaceChildren(el("tbody", {}, ...fieldRows("", fields), ...fieldRows("source ", source || {})));
  dialog.showModal();
  if (m.mp4) {
    video.hidden = false;
    video.src = m.mp4;
    video.play().catch((err) => { message.textContent = `Press play to start (${err.message})`; });
  } else {
    video.hidden = true;
    video.removeAttribute("src");
    message.textContent = "No video for this clip here.";
  }
}

function closePlayer() {
  const video = $("#player-video");
  video.pause();
  video.removeAttribute("src");
  video.load();
  $("#player-audio").replaceChildren();
}

// --- failures -----------------------------------------------------------------------------------

function renderFailures({ failures }) {
  $("#failures-count").textContent = `${fmt(failures.length)} source${failures.length === 1 ? "" : "s"} failed or rejected, with the stage and the reason.`;
  const head = ["source", "class", "stage", "reason", "detail", "URL"];
  $("#failures-table").replaceChildren(
    el("thead", {}, el("tr", {}, ...head.map((h) => el("th", {}, h)))),
    el("tbody", {}, ...failures.map((f) => el("tr", { "data-source": f.source_id },
      el("td", {}, f.source_id), el("td", {}, f.class), el("td", {}, f.stage), el("td", {}, f.reason),
      el("td", { class: "detail" }, f.detail), el("td", { class: "url" }, link(f.url))))));
}

// --- start --------------------------------------------------------------------------------------

async function main() {
  $("#player-close").addEventListener("click", () => $("#player").close());
  $("#player").addEventListener("close", closePlayer);
  let typing = null;
  for (const name of ["class", "split", "q"]) {
    const input = $(`#filter-${name}`);
    input.addEventListener(name === "q" ? "input" : "change", () => {
      filters[name] = input.value.trim();
      clearTimeout(typing);
      typing = setTimeout(renderGroups, name === "q" ? 250 : 0);
    });
  }
  $("#filters").addEventListener("submit", (event) => event.preventDefault());
  try {
    const [summary, failures] = await Promise.all([api("summary"), api("failures")]);
    renderSummary(summary);
    renderFailures(failures);
    await renderGroups();
    $("#status").hidden = true;
    document.body.dataset.ready = "true";
  } catch (err) {
    $("#status").textContent = `The corpus could not be loaded: ${err.message}`;
  }
}

main();
