#include "docs_page.h"

namespace berth::sdk {

std::string_view DocsPage() {
  static constexpr std::string_view kPage = R"html(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>API docs</title>
<style>
body { font: 15px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 60rem; padding: 1rem 1.5rem; color: #1d2430; }
h1 { font-size: 1.5rem; margin-bottom: .2rem; } h2 { font-size: 1.15rem; margin-top: 2rem; }
.sub { color: #5b6575; margin-top: 0; }
section { border: 1px solid #d4d9e1; border-radius: 6px; margin: .8rem 0; padding: .6rem .9rem; }
.verb { display: inline-block; min-width: 3.2rem; font-weight: 600; color: #fff; background: #2f7d4f; border-radius: 4px; padding: 0 .4rem; text-align: center; }
code, textarea, pre, input { font: 13px/1.4 ui-monospace, Menlo, Consolas, monospace; }
textarea { width: 100%; box-sizing: border-box; min-height: 4.5rem; }
pre { background: #f4f6f9; padding: .5rem; overflow: auto; margin: .4rem 0 0; white-space: pre-wrap; }
button { margin-top: .4rem; cursor: pointer; }
table { border-collapse: collapse; width: 100%; } td, th { text-align: left; padding: .3rem .4rem; border-bottom: 1px solid #e3e7ee; }
input { width: 100%; box-sizing: border-box; }
.err { color: #a33; } .ok { color: #2f7d4f; }
</style>
</head>
<body>
<h1 id="title">API docs</h1>
<p class="sub" id="subtitle">loading openapi.json&hellip;</p>
<h2>Entrypoints</h2>
<div id="entrypoints"></div>
<h2>Parameters</h2>
<table id="parameters"><thead><tr><th>name</th><th>type</th><th>value (JSON)</th><th>default</th><th></th></tr></thead><tbody></tbody></table>
<script>
"use strict";
const el = (tag, attrs = {}, ...kids) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) { if (k === "text") e.textContent = v; else e.setAttribute(k, v); }
  for (const k of kids) e.append(k);
  return e;
};
const show = async (out, res) => {
  const text = await res.text();
  let body = text;
  try { body = JSON.stringify(JSON.parse(text), null, 2); } catch (e) {}
  out.className = res.ok ? "ok" : "err";
  out.textContent = res.status + " " + res.statusText + "\n" + body;
};
const example = (s) => {
  if (!s) return null;
  if (s.anyOf) return example(s.anyOf[0]);
  switch (Array.isArray(s.type) ? s.type[0] : s.type) {
    case "string": return "";
    case "integer": case "number": return 0;
    case "boolean": return false;
    case "array": return [];
    case "object": {
      const o = {};
      for (const [k, v] of Object.entries(s.properties || {})) o[k] = example(v);
      return o;
    }
  }
  return null;
};
const schemaText = (s) => JSON.stringify(s);
async function loadParameters() {
  const tbody = document.querySelector("#parameters tbody");
  const res = await fetch("~parameters");
  const all = (await res.json()).parameters || {};
  tbody.replaceChildren();
  for (const [name, p] of Object.entries(all)) {
    const input = el("input", { value: JSON.stringify(p.value) });
    const out = el("pre");
    out.hidden = true;
    const set = el("button", { text: "Set" });
    set.onclick = async () => {
      let value;
      try { value = JSON.parse(input.value); } catch (e) { out.hidden = false; out.className = "err"; out.textContent = "not JSON: " + e.message; return; }
      const r = await fetch("~parameters/" + encodeURIComponent(name), { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ value }) });
      out.hidden = false;
      await show(out, r);
    };
    const cell = el("td", {}, input, out);
    tbody.append(el("tr", {}, el("td", {}, el("code", { text: name })), el("td", { text: p.type }), cell,
                    el("td", {}, el("code", { text: JSON.stringify(p.default) })), el("td", {}, set)));
  }
  if (!Object.keys(all).length) tbody.append(el("tr", {}, el("td", { colspan: 5, text: "This service has no parameters." })));
}
async function load() {
  const spec = await (await fetch("openapi.json")).json();
  document.title = spec.info.title + " API";
  document.getElementById("title").textContent = spec.info.title;
  document.getElementById("subtitle").textContent = "version " + spec.info.version + " \u00b7 served at " + spec.servers[0].url + " \u00b7 ";
  document.getElementById("subtitle").append(el("a", { href: "openapi.json", text: "openapi.json" }));
  const list = document.getElementById("entrypoints");
  for (const [path, item] of Object.entries(spec.paths)) {
    const op = item.post;
    if (!op || !(op.tags || []).includes("entrypoints")) continue;
    const req = op.requestBody.content["application/json"].schema;
    const res = op.responses["200"].content["application/json"].schema;
    const body = el("textarea", { spellcheck: "false" });
    body.value = JSON.stringify(example(req), null, 2);
    const out = el("pre");
    out.hidden = true;
    const send = el("button", { text: "Send" });
    send.onclick = async () => {
      out.hidden = false;
      out.className = "";
      out.textContent = "\u2026";
      try { await show(out, await fetch(path.slice(1), { method: "POST", headers: { "Content-Type": "application/json" }, body: body.value })); }
      catch (e) { out.className = "err"; out.textContent = String(e); }
    };
    const args = Object.entries(req.properties || {}).map(([k, v]) =>
      k + ((req.required || []).includes(k) ? "" : "?") + ": " + schemaText(v)).join(", ");
    list.append(el("section", {}, el("div", {}, el("span", { class: "verb", text: "POST" }), " ", el("code", { text: path })),
                   el("p", {}, el("code", { text: "(" + args + ") \u2192 " + schemaText(res) })), body, send, out));
  }
  if (!list.children.length) list.append(el("p", { text: "This service has no entrypoints." }));
  await loadParameters();
}
load().catch((e) => { const s = document.getElementById("subtitle"); s.className = "err"; s.textContent = "cannot load openapi.json: " + e; });
</script>
</body>
</html>
)html";
  return kPage;
}

}  // namespace berth::sdk
