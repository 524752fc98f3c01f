// The settings page: the table is built with DOM calls (never innerHTML)
// from /api/workspaces, which carries no key. A key is fetched only when
// the person copies or reveals it, and is kept in no variable after.
"use strict";

const MASK = "opk_" + "•".repeat(20);
let namespace = "";
let lastRendered = "";

function statusMessage(text, isError) {
  const el = document.getElementById("status");
  el.textContent = text;
  el.classList.toggle("error", !!isError);
}

// The session lives in sessionStorage (per origin, so per port), never in
// a cookie, which a browser would send to every port of 127.0.0.1.
async function login() {
  const m = /^#login=([A-Za-z0-9_-]+)$/.exec(location.hash);
  if (!m) return;
  history.replaceState(null, "", "/"); // the token leaves the address bar
  const res = await fetch("/api/login", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ token: m[1] }),
  });
  const data = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(data.error || res.statusText);
  sessionStorage.setItem("octopods-session", data.session);
}

async function api(path, body) {
  const headers = { "X-Octopods-Session": sessionStorage.getItem("octopods-session") || "" };
  const init = { headers };
  if (body !== undefined) {
    init.method = "POST";
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  const data = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(data.error || res.statusText);
  return data;
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

function ago(iso) {
  if (!iso) return "never used";
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (s < 60) return "last used just now";
  if (s < 3600) return "last used " + Math.round(s / 60) + " min ago";
  if (s < 172800) return "last used " + Math.round(s / 3600) + " h ago";
  return "last used " + Math.round(s / 86400) + " days ago";
}

// copyIcon is two overlapping squares drawn in SVG: the "⧉" glyph is
// missing from many fonts (an empty box in headless Chromium).
function copyIcon() {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 16 16");
  svg.setAttribute("width", "14");
  svg.setAttribute("height", "14");
  svg.setAttribute("aria-hidden", "true");
  for (const [x, y] of [[1, 5], [5, 1]]) {
    const r = document.createElementNS(ns, "rect");
    for (const [k, v] of Object.entries({ x, y, width: 10, height: 10, rx: 1.5, fill: "none", stroke: "currentColor", "stroke-width": 1.5 })) r.setAttribute(k, v);
    svg.append(r);
  }
  return svg;
}

function keyCell(row, can) {
  if (!row.hasKey) return el("span", { class: "no-key" }, "No API key generated");
  if (!row.issued) return el("span", { class: "meta" }, "Issuing… " + (row.state || ""));
  const field = el("input", { type: "text", readonly: "", value: MASK, "aria-label": "API key of " + row.workspace + " (hidden)", id: "key-" + row.workspace });
  const wrap = el("div", { class: "key-field" }, field);
  if (can.copy) {
    const copy = el("button", { class: "icon copy", type: "button", "aria-label": "Copy API key of " + row.workspace, title: "Copy" }, copyIcon());
    copy.addEventListener("click", () => copyKey(row, copy));
    const reveal = el("button", { class: "reveal", type: "button", "aria-pressed": "false" }, "Reveal");
    reveal.addEventListener("click", () => toggleReveal(row, field, reveal));
    wrap.append(copy, reveal);
  }
  return el("div", {}, wrap, el("div", { class: "meta" }, "Key ID " + row.keyID + " · " + ago(row.lastUsed)));
}

async function copyKey(row, button) {
  try {
    const { key } = await api("/api/copy", { namespace: row.namespace, workspace: row.workspace });
    await navigator.clipboard.writeText(key);
    button.textContent = "✓";
    button.classList.add("copied");
    button.setAttribute("aria-label", "Copied");
    statusMessage("API key of " + row.workspace + " copied to the clipboard.");
    setTimeout(() => {
      button.replaceChildren(copyIcon());
      button.classList.remove("copied");
      button.setAttribute("aria-label", "Copy API key of " + row.workspace);
    }, 2000);
  } catch (e) {
    statusMessage("Could not copy: " + e.message, true);
  }
}

async function toggleReveal(row, field, button) {
  if (button.getAttribute("aria-pressed") === "true") {
    field.value = MASK;
    button.textContent = "Reveal";
    button.setAttribute("aria-pressed", "false");
    return;
  }
  try {
    const { key } = await api("/api/copy", { namespace: row.namespace, workspace: row.workspace });
    field.value = key;
    button.textContent = "Hide";
    button.setAttribute("aria-pressed", "true");
  } catch (e) {
    statusMessage("Could not reveal: " + e.message, true);
  }
}

function actionsCell(row, can) {
  const cell = el("div", { class: "actions" });
  if (!row.hasKey && can.create) {
    const create = el("button", { class: "primary create", type: "button" }, "Create API Key");
    create.addEventListener("click", async () => {
      create.disabled = true;
      try {
        await api("/api/create", { namespace: row.namespace, workspace: row.workspace });
        statusMessage("API key of " + row.workspace + " created.");
        await refresh();
      } catch (e) {
        create.disabled = false;
        statusMessage("Could not create the key: " + e.message, true);
      }
    });
    cell.append(create);
  }
  if (row.issued && can.rotate) {
    const rotate = el("button", { class: "rotate", type: "button" }, "Rotate");
    rotate.addEventListener("click", async () => {
      const grace = row.gracePeriod === "0s"
        ? "The current key stops working at once (grace period 0s): integrations must load the new key."
        : "The current key keeps working for " + row.gracePeriod + " (grace period).";
      if (!confirm("Rotate the API key of " + row.workspace + "?\n" + grace)) return;
      try {
        await api("/api/rotate", { namespace: row.namespace, workspace: row.workspace });
        statusMessage("Rotation of " + row.workspace + " requested.");
        await refresh();
      } catch (e) {
        statusMessage("Could not rotate: " + e.message, true);
      }
    });
    cell.append(rotate);
  }
  return cell;
}

function render(data) {
  const tbody = document.querySelector("#keys tbody");
  const rows = data.rows;
  document.getElementById("empty").hidden = rows.length > 0;
  tbody.replaceChildren(...rows.map((row) => el("tr", { "data-workspace": row.workspace },
    el("td", {}, el("div", { class: "workspace-name" }, row.workspace),
      el("div", { class: "meta" }, (row.displayName || "") + " · " + (row.provider || ""))),
    el("td", {}, keyCell(row, data.can)),
    el("td", {}, actionsCell(row, data.can)))));
}

async function refresh() {
  try {
    const data = await api("/api/workspaces?namespace=" + encodeURIComponent(namespace));
    const fingerprint = JSON.stringify(data);
    // Re-render only on change: a revealed key or a focused button stays.
    if (fingerprint !== lastRendered) {
      lastRendered = fingerprint;
      render(data);
    }
  } catch (e) {
    statusMessage("Could not load the workspaces: " + e.message, true);
  }
}

async function start() {
  await login();
  const { current, namespaces } = await api("/api/namespaces");
  namespace = current;
  const select = document.getElementById("namespace");
  select.replaceChildren(...namespaces.map((n) => el("option", n === current ? { value: n, selected: "" } : { value: n }, n)));
  select.addEventListener("change", () => { namespace = select.value; lastRendered = ""; refresh(); });
  await refresh();
  // Live: a key created or rotated elsewhere shows without a reload.
  setInterval(refresh, 2000);
}

document.addEventListener("DOMContentLoaded", () => start().catch((e) => statusMessage(e.message, true)));
