// The settings page: the table is built with DOM calls (never innerHTML)
// from /api/workspaces, which carries no key. A key is fetched only when
// the person copies or reveals it, and is kept in no variable after.
"use strict";

// The mask shows the key's type by its prefix: opk_ workspace, opc_
// channel, opw_ WhatsApp Business.
function mask(row) {
  const prefix = !row.target ? "opk_" : row.target.startsWith("whatsapp/") ? "opw_" : "opc_";
  return prefix + "•".repeat(20);
}

// A row is a workspace's (row.workspace) or a channel's or WhatsApp
// Business Account's (row.target, "channel/NAME"): the same buttons and
// calls serve the three key types.
function nameOf(row) { return row.target || row.workspace; }
function targetOf(row) {
  return row.target ? { namespace: row.namespace, target: row.target } : { namespace: row.namespace, workspace: row.workspace };
}
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
  const field = el("input", { type: "text", readonly: "", value: mask(row), "aria-label": "API key of " + nameOf(row) + " (hidden)", id: "key-" + nameOf(row) });
  const wrap = el("div", { class: "key-field" }, field);
  if (can.copy) {
    const copy = el("button", { class: "icon copy", type: "button", "aria-label": "Copy API key of " + nameOf(row), title: "Copy" }, copyIcon());
    copy.addEventListener("click", () => copyKey(row, copy));
    const reveal = el("button", { class: "reveal", type: "button", "aria-pressed": "false" }, "Reveal");
    reveal.addEventListener("click", () => toggleReveal(row, field, reveal));
    wrap.append(copy, reveal);
  }
  return el("div", {}, wrap, el("div", { class: "meta" }, "Key ID " + row.keyID + " · " + ago(row.lastUsed)), leakNotice(row));
}

// leakNotice says that a key was reported found in public, and whether the
// reported key still works.
function leakNotice(row) {
  if (!row.leak) return "";
  const what = row.leak.current
    ? "Key " + row.leak.keyID + " was reported leaked and still works: rotate it."
    : "Key " + row.leak.keyID + " was reported leaked and no longer works.";
  return el("div", { class: "leak", role: "alert" }, what + " Found " + ago(row.leak.time).replace(/^Last used /, "") + " at " + row.leak.url);
}

async function copyKey(row, button) {
  try {
    const { key } = await api("/api/copy", targetOf(row));
    await navigator.clipboard.writeText(key);
    button.textContent = "✓";
    button.classList.add("copied");
    button.setAttribute("aria-label", "Copied");
    statusMessage("API key of " + nameOf(row) + " copied to the clipboard.");
    setTimeout(() => {
      button.replaceChildren(copyIcon());
      button.classList.remove("copied");
      button.setAttribute("aria-label", "Copy API key of " + nameOf(row));
    }, 2000);
  } catch (e) {
    statusMessage("Could not copy: " + e.message, true);
  }
}

async function toggleReveal(row, field, button) {
  if (button.getAttribute("aria-pressed") === "true") {
    field.value = mask(row);
    button.textContent = "Reveal";
    button.setAttribute("aria-pressed", "false");
    return;
  }
  try {
    const { key } = await api("/api/copy", targetOf(row));
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
        await api("/api/create", targetOf(row));
        statusMessage("API key of " + nameOf(row) + " created.");
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
      if (!confirm("Rotate the API key of " + nameOf(row) + "?\n" + grace)) return;
      try {
        await api("/api/rotate", targetOf(row));
        statusMessage("Rotation of " + nameOf(row) + " requested.");
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

// The Channels view: a card per channel and WhatsApp Business Account,
// its key in a card labelled by type as the product's channel pages are
// ("Twilio API Key", "VBM API Key", "Telegram API Key", "WhatsApp
// Business API Key").
function renderChannels(data) {
  const list = document.getElementById("channels");
  const cards = [];
  for (const group of [data.channels, data.whatsapp]) {
    for (const row of group.rows) {
      const detail = [row.type, "workspace " + row.workspace].concat(row.phoneNumbers || []).join(" · ");
      cards.push(el("article", { class: "channel", "data-target": row.target },
        el("h3", {}, row.displayName || row.name),
        el("div", { class: "meta" }, detail),
        el("section", { class: "key-card", "aria-label": row.label },
          el("h4", {}, row.label),
          keyCell(row, group.can),
          actionsCell(row, group.can))));
    }
  }
  document.getElementById("no-channels").hidden = cards.length > 0;
  list.replaceChildren(...cards);
}

let lastChannels = "";

async function refresh() {
  try {
    const data = await api("/api/workspaces?namespace=" + encodeURIComponent(namespace));
    const fingerprint = JSON.stringify(data);
    // Re-render only on change: a revealed key or a focused button stays.
    if (fingerprint !== lastRendered) {
      lastRendered = fingerprint;
      render(data);
    }
    const channels = await api("/api/channels?namespace=" + encodeURIComponent(namespace));
    const fp = JSON.stringify(channels);
    if (fp !== lastChannels) {
      lastChannels = fp;
      renderChannels(channels);
    }
  } catch (e) {
    statusMessage("Could not load the keys: " + e.message, true);
  }
}

async function start() {
  await login();
  const { current, namespaces } = await api("/api/namespaces");
  namespace = current;
  const select = document.getElementById("namespace");
  select.replaceChildren(...namespaces.map((n) => el("option", n === current ? { value: n, selected: "" } : { value: n }, n)));
  select.addEventListener("change", () => { namespace = select.value; lastRendered = ""; lastChannels = ""; refresh(); });
  await refresh();
  // Live: a key created or rotated elsewhere shows without a reload.
  setInterval(refresh, 2000);
}

document.addEventListener("DOMContentLoaded", () => start().catch((e) => statusMessage(e.message, true)));
