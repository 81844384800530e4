"""The page's inline stylesheet and script (no network: the report is one self-contained file)."""

from __future__ import annotations

STYLE = """
:root {
  --ink: #1f2933; --muted: #616e7c; --line: #d9dee5; --bg: #f5f7fa; --card: #ffffff;
  --accent: #2f6fdf; --gold: #16803c; --pred: rgba(47, 111, 223, 0.17); --both: rgba(22, 128, 60, 0.20);
  --exact: #16803c; --partial: #b7791f; --wrong_sentence: #c53030; --missed: #805ad5;
  --spurious: #dd6b20; --correct_empty: #718096;
}
* { box-sizing: border-box; }
[hidden] { display: none !important; }
body { margin: 0; background: var(--bg); color: var(--ink);
  font: 15px/1.55 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1200px; margin: 0 auto; padding: 0 24px 64px; }
header.page { background: #1f2a3c; color: #f5f7fa; padding: 22px 0 18px; margin-bottom: 22px; }
header.page .inner { max-width: 1200px; margin: 0 auto; padding: 0 24px; }
header.page h1 { margin: 0 0 6px; font-size: 24px; font-weight: 650; letter-spacing: -0.01em; }
header.page .chips { display: flex; flex-wrap: wrap; gap: 6px; margin-top: 8px; }
.chip { display: inline-block; padding: 1px 9px; border-radius: 999px; background: rgba(255,255,255,0.12); font-size: 13px; }
.chip.warn { background: #f6c343; color: #3b2a00; font-weight: 600; }
nav.toc { display: flex; gap: 18px; margin-top: 12px; font-size: 14px; }
nav.toc a { color: #c9d7f2; text-decoration: none; }
nav.toc a:hover { text-decoration: underline; }
h2 { font-size: 19px; margin: 30px 0 12px; padding-bottom: 6px; border-bottom: 1px solid var(--line); }
h3 { font-size: 15px; margin: 0; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 16px 18px; margin-bottom: 14px; }
.note { color: var(--muted); font-size: 13.5px; margin: 6px 0 10px; }
.warning { background: #fff7e0; border: 1px solid #f0d48a; border-radius: 8px; padding: 8px 12px; margin: 10px 0; font-size: 14px; }
.headline { display: grid; grid-template-columns: repeat(auto-fit, minmax(160px, 1fr)); gap: 12px; margin-bottom: 14px; }
.stat { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 12px 16px; }
.stat .value { font-size: 28px; font-weight: 650; line-height: 1.2; font-variant-numeric: tabular-nums; }
.stat .label { color: var(--muted); font-size: 13px; }
table { border-collapse: collapse; width: 100%; font-size: 14px; }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid #edf0f4; vertical-align: top; }
th { font-weight: 600; color: var(--muted); font-size: 12.5px; text-transform: uppercase; letter-spacing: 0.03em; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.model td { font-weight: 600; }
.scroll { overflow-x: auto; }
td.nowrap { white-space: nowrap; }
table.groups td.name { white-space: nowrap; }
.bar { display: inline-block; width: 96px; height: 9px; background: #e8ecf1; border-radius: 5px; vertical-align: middle; margin-left: 8px; overflow: hidden; }
.bar > span { display: block; height: 100%; background: var(--accent); border-radius: 5px; }
.bar.base > span { background: #a0aec0; }
.stack { display: flex; height: 14px; border-radius: 7px; overflow: hidden; background: #e8ecf1; margin: 4px 0 12px; }
.stack > span { display: block; height: 100%; }
.swatch { display: inline-block; width: 11px; height: 11px; border-radius: 3px; margin-right: 6px; vertical-align: -1px; }
figure { margin: 0; }
figure img { max-width: 100%; height: auto; display: block; margin: 0 auto; }
figcaption { color: var(--muted); font-size: 13px; text-align: center; margin-top: 4px; }
.two { display: grid; grid-template-columns: 1fr 1fr; gap: 14px; }
@media (max-width: 900px) { .two { grid-template-columns: 1fr; } }
.badge { display: inline-block; padding: 0 8px; border-radius: 999px; font-size: 12px; font-weight: 600; color: #fff; white-space: nowrap; line-height: 20px; }
.badge.exact { background: var(--exact); } .badge.partial { background: var(--partial); }
.badge.wrong_sentence { background: var(--wrong_sentence); } .badge.missed { background: var(--missed); }
.badge.spurious { background: var(--spurious); } .badge.correct_empty { background: var(--correct_empty); }
.sym { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12.5px; white-space: nowrap; }
.toolbar { position: sticky; top: 0; z-index: 5; display: flex; flex-wrap: wrap; align-items: center; gap: 10px 16px;
  background: rgba(245, 247, 250, 0.96); backdrop-filter: blur(4px); padding: 10px 0; border-bottom: 1px solid var(--line); margin-bottom: 14px; }
.toolbar label { font-size: 13px; color: var(--muted); display: flex; align-items: center; gap: 6px; }
.toolbar select, .toolbar input { font: inherit; font-size: 14px; padding: 3px 6px; border: 1px solid #c3cad4; border-radius: 6px; background: #fff; color: var(--ink); }
.toolbar input[type=number] { width: 90px; }
.toolbar .count { margin-left: auto; font-size: 13px; color: var(--muted); }
.legend { display: flex; flex-wrap: wrap; gap: 16px; font-size: 13px; color: var(--muted); margin-bottom: 12px; }
section.post { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 14px 18px 10px; margin-bottom: 14px; }
section.post > header { display: flex; flex-wrap: wrap; align-items: baseline; gap: 8px 12px; margin-bottom: 10px; }
section.post > header .meta { color: var(--muted); font-size: 13px; }
section.post > header .badges { display: flex; flex-wrap: wrap; gap: 4px; margin-left: auto; }
.post-text { unicode-bidi: plaintext; white-space: pre-wrap; overflow-wrap: anywhere; line-height: 1.75; font-size: 15px; background: #fbfcfd;
  border: 1px solid #edf0f4; border-radius: 8px; padding: 10px 14px; }
details.long > summary { cursor: pointer; color: var(--accent); font-size: 14px; margin-bottom: 8px; }
.m.g { text-decoration: underline; text-decoration-color: var(--gold); text-decoration-thickness: 2.5px; text-underline-offset: 4px; text-decoration-skip-ink: none; }
.m.p { background: var(--pred); border-radius: 3px; box-shadow: 0 0 0 1px rgba(47, 111, 223, 0.18); }
.m.g.p { background: var(--both); box-shadow: 0 0 0 1px rgba(22, 128, 60, 0.28); }
.key-gold { text-decoration: underline; text-decoration-color: var(--gold); text-decoration-thickness: 2.5px; text-underline-offset: 4px; }
.key-pred { background: var(--pred); padding: 0 3px; border-radius: 3px; }
.key-both { background: var(--both); padding: 0 3px; border-radius: 3px; text-decoration: underline; text-decoration-color: var(--gold); text-decoration-thickness: 2.5px; text-underline-offset: 4px; }
table.examples { margin-top: 10px; font-size: 13.5px; }
table.examples td.text { width: 34%; }
table.examples .quote, table.examples .why { overflow-wrap: anywhere; unicode-bidi: plaintext; }
table.examples .quote + .quote { margin-top: 4px; }
table.examples .why { color: var(--muted); font-style: italic; margin-top: 3px; }
table.examples .none { color: #a0aec0; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 0.92em; background: #eef1f5; padding: 0 4px; border-radius: 4px; }
.empty-state { text-align: center; color: var(--muted); padding: 30px; }
"""

# Reads the filter controls (preset from the query string, e.g. ?outcome=missed&symptom=FATIGUE),
# hides example rows and posts that do not pass, keeps only the visible examples' marks, and
# reorders the posts. Static text only: no report data is ever interpolated into this script.
SCRIPT = """
(function () {
  "use strict";
  var list = document.getElementById("post-list");
  if (!list) return;
  var posts = Array.prototype.slice.call(list.querySelectorAll("section.post"));
  var controls = {
    outcome: document.getElementById("f-outcome"),
    symptom: document.getElementById("f-symptom"),
    score: document.getElementById("f-score"),
    sort: document.getElementById("f-sort")
  };
  var params = new URLSearchParams(window.location.search);
  Object.keys(controls).forEach(function (name) {
    var el = controls[name];
    if (el && params.has(name)) el.value = params.get(name);
  });
  var errors = ["partial", "wrong_sentence", "missed", "spurious"];
  var totalRows = list.querySelectorAll("tr[data-example]").length;

  function scoreOf(row) {
    var s = row.getAttribute("data-score");
    return s === "" || s === null ? -Infinity : parseFloat(s);
  }
  function passes(row, outcome, symptom, minScore) {
    var o = row.getAttribute("data-outcome");
    if (outcome === "errors" ? errors.indexOf(o) < 0 : outcome !== "all" && o !== outcome) return false;
    if (symptom !== "all" && row.getAttribute("data-symptom") !== symptom) return false;
    return !(minScore !== null && !(scoreOf(row) >= minScore));
  }
  function anyVisible(attr, visible) {
    if (!attr) return false;
    return attr.split(" ").some(function (k) { return visible[k]; });
  }
  function apply() {
    var outcome = controls.outcome ? controls.outcome.value : "all";
    var symptom = controls.symptom ? controls.symptom.value : "all";
    var raw = controls.score ? controls.score.value.trim() : "";
    var minScore = raw === "" || isNaN(parseFloat(raw)) ? null : parseFloat(raw);
    var shownPosts = 0, shownRows = 0;
    posts.forEach(function (post) {
      var visible = {}, count = 0, best = -Infinity, f1 = 0;
      post.querySelectorAll("tr[data-example]").forEach(function (row) {
        var ok = passes(row, outcome, symptom, minScore);
        row.hidden = !ok;
        if (ok) {
          visible[row.getAttribute("data-example")] = true;
          count += 1;
          best = Math.max(best, scoreOf(row));
          f1 += parseFloat(row.getAttribute("data-f1"));
        }
      });
      post.querySelectorAll(".m").forEach(function (mark) {
        mark.classList.toggle("g", anyVisible(mark.getAttribute("data-gold"), visible));
        mark.classList.toggle("p", anyVisible(mark.getAttribute("data-pred"), visible));
      });
      post.hidden = count === 0;
      post.sortScore = best;
      post.sortF1 = count ? f1 / count : 0;
      if (count) { shownPosts += 1; shownRows += count; }
    });
    var order = controls.sort ? controls.sort.value : "post";
    var sorted = posts.slice().sort(function (a, b) {
      var ia = +a.getAttribute("data-order"), ib = +b.getAttribute("data-order");
      if (order === "score-desc" && a.sortScore !== b.sortScore) return b.sortScore - a.sortScore;
      if (order === "score-asc" && a.sortScore !== b.sortScore) return a.sortScore - b.sortScore;
      if (order === "f1-asc" && a.sortF1 !== b.sortF1) return a.sortF1 - b.sortF1;
      return ia - ib;
    });
    sorted.forEach(function (post) { list.appendChild(post); });
    var counter = document.getElementById("shown-count");
    if (counter) counter.textContent = shownPosts + " of " + posts.length + " posts shown \\u00b7 " + shownRows + " of " + totalRows + " examples";
    var empty = document.getElementById("no-match");
    if (empty) empty.hidden = shownPosts !== 0;
  }
  Object.keys(controls).forEach(function (name) {
    var el = controls[name];
    if (el) { el.addEventListener("input", apply); el.addEventListener("change", apply); }
  });
  apply();
})();
"""
