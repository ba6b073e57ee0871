/**
 * The admin page: one self-contained HTML document (inline CSS and JS under a
 * CSP nonce; no fonts, images, CDNs or other requests than the admin API).
 *
 * The page shows the process's pid, generation, uptime, phase, listeners,
 * in-flight requests, connections, restarts and the last restart's outcome,
 * refreshed from `{base}/status` every 2 s, and has Restart and Shutdown
 * buttons that POST with the `X-Admin-CSRF` header (and a bearer token when
 * the API has one). Shutdown asks for a second click. Every value is written
 * with `textContent`, never as HTML.
 *
 * @module
 */

import type { AdminStatusBody } from "./admin_status.ts";
import type { LastRestart } from "../restart/handover_types.ts";
import { COMMON_HEADERS } from "./admin_http.ts";
import { randomHex } from "../util/random.ts";

/** What the page is rendered from. */
export interface AdminPageView {
  /** The admin routes' mount point, e.g. `/debug/admin`. */
  base: string;
  /** The CSRF token to send as `X-Admin-CSRF`. */
  csrf: string;
  /** The CSP nonce of this response. */
  nonce: string;
  /** "token": ask for a bearer token; "loopback": no token. */
  auth: "token" | "loopback";
  /** The status to render at once (left out when a token is needed). */
  status?: AdminStatusBody;
}

/**
 * The page as a response, under a CSP whose nonce is made for it alone.
 */
export function pageResponse(view: Omit<AdminPageView, "nonce">): Response {
  const nonce = randomHex(16);
  const html = renderAdminPage({ ...view, nonce });
  return new Response(html, {
    status: 200,
    headers: {
      ...COMMON_HEADERS,
      "content-type": "text/html; charset=utf-8",
      "content-security-policy": `default-src 'none'; ` +
        `script-src 'nonce-${nonce}'; style-src 'nonce-${nonce}'; ` +
        `connect-src 'self'; base-uri 'none'; form-action 'none'; ` +
        `frame-ancestors 'none'`,
    },
  });
}

/** Renders the page. */
export function renderAdminPage(view: AdminPageView): string {
  const s = view.status;
  const dash = "—";
  const v = (value: unknown) => escapeHtml(s ? String(value) : dash);
  const listeners = s
    ? s.listeners.map((l) => `<li>${escapeHtml(l)}</li>`).join("")
    : "";
  const last = s ? describeLastRestart(s.lastRestart, s.restarts) : dash;
  const lastClass = s?.lastRestart
    ? (s.lastRestart.ok ? "ok" : "bad")
    : "muted";
  const phaseClass = s ? (s.phase === "serving" ? "ok" : "warn") : "muted";
  const nonce = escapeHtml(view.nonce);
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<meta name="admin-base" content="${escapeHtml(view.base)}">
<meta name="admin-csrf" content="${escapeHtml(view.csrf)}">
<meta name="admin-auth" content="${escapeHtml(view.auth)}">
<title>Admin · pid ${v(s?.pid)}</title>
<style nonce="${nonce}">${STYLE}</style>
</head>
<body>
<header>
  <h1>serveGraceful <span class="muted">admin</span></h1>
  <p id="conn" class="pill ${s ? "ok" : "muted"}">${
    s ? "live" : "waiting for token"
  }</p>
</header>
<main>
<form id="token-form" class="card${view.auth === "token" ? "" : " hidden"}">
  <label for="token">Admin token</label>
  <div class="row">
    <input id="token" type="password" autocomplete="current-password" spellcheck="false" placeholder="Bearer token">
    <button type="submit" class="btn">Use token</button>
    <button type="button" id="forget" class="btn ghost">Forget</button>
  </div>
  <p class="hint">Kept in this tab's sessionStorage only; sent as <code>Authorization: Bearer</code>.</p>
</form>
<section class="grid">
  <div class="card"><h2>PID</h2><p class="big" id="pid">${v(s?.pid)}</p></div>
  <div class="card"><h2>Generation</h2><p class="big" id="generation">${
    v(s?.generation)
  }</p></div>
  <div class="card"><h2>Uptime</h2><p class="big" id="uptime">${
    s ? escapeHtml(formatDuration(s.uptimeMs)) : dash
  }</p><p class="hint">since first start <span id="since-first">${
    s ? escapeHtml(formatDuration(s.now - s.firstStartedAt)) : dash
  }</span></p></div>
  <div class="card"><h2>Phase</h2><p class="big"><span id="phase" class="pill ${phaseClass}">${
    v(s?.phase)
  }</span></p></div>
  <div class="card"><h2>In flight</h2><p class="big" id="inflight">${
    v(s?.inFlight)
  }</p><p class="hint"><span id="connections">${
    v(s?.connections)
  }</span> open connections</p></div>
  <div class="card"><h2>Restarts</h2><p class="big" id="restarts">${
    v(s?.restarts)
  }</p></div>
</section>
<section class="card">
  <h2>Listeners</h2>
  <ul id="listeners">${listeners}</ul>
</section>
<section class="card">
  <h2>Last restart</h2>
  <p id="last-restart" class="${lastClass}">${escapeHtml(last)}</p>
</section>
<section class="card actions">
  <button type="button" id="restart" class="btn primary">Restart</button>
  <button type="button" id="shutdown" class="btn danger">Shutdown</button>
  <p id="message" role="status" aria-live="polite"></p>
</section>
</main>
<footer class="muted">Refreshes every 2 s · <span id="updated">${
    s ? "rendered " + escapeHtml(new Date(s.now).toISOString()) : dash
  }</span></footer>
<script nonce="${nonce}">${SCRIPT}</script>
</body>
</html>
`;
}

/** "3 h 4 min", "12 s", … */
function formatDuration(ms: number): string {
  const seconds = Math.max(0, Math.floor(ms / 1000));
  const d = Math.floor(seconds / 86400);
  const h = Math.floor(seconds / 3600) % 24;
  const m = Math.floor(seconds / 60) % 60;
  const sec = seconds % 60;
  if (d > 0) return `${d} d ${h} h`;
  if (h > 0) return `${h} h ${m} min`;
  if (m > 0) return `${m} min ${sec} s`;
  return `${sec} s`;
}

function describeLastRestart(
  last: LastRestart | null | undefined,
  restarts: number,
): string {
  if (!last) {
    return restarts === 0
      ? "none yet"
      : `none since this generation took over (restart #${restarts})`;
  }
  const when = new Date(last.at).toISOString();
  const took = `${(last.durationMs / 1000).toFixed(1)} s`;
  return last.ok
    ? `ok: pid ${last.pid} took over in ${took} (${last.trigger}, ${when})`
    : `failed after ${took}: ${last.reason ?? "unknown reason"} ` +
      `(${last.trigger}, ${when})`;
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

const STYLE = `
:root{color-scheme:light dark;--bg:#f5f6f8;--fg:#1c2330;--card:#fff;--line:#dfe3ea;--muted:#6b7485;--ok:#137a3f;--okbg:#e2f5e9;--warn:#8a5a00;--warnbg:#fff1d6;--bad:#b3261e;--badbg:#fde7e5;--accent:#2456d6}
@media (prefers-color-scheme:dark){:root{--bg:#12151b;--fg:#e5e9f0;--card:#1b2029;--line:#2c3340;--muted:#8f98a8;--ok:#5fd08a;--okbg:#16331f;--warn:#f0c060;--warnbg:#3a2e12;--bad:#ff8a80;--badbg:#3d1a18;--accent:#7aa2ff}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
header{display:flex;align-items:center;justify-content:space-between;padding:18px 28px;border-bottom:1px solid var(--line);background:var(--card)}
h1{font-size:20px;margin:0;font-weight:650}
h2{font-size:12px;text-transform:uppercase;letter-spacing:.06em;color:var(--muted);margin:0 0 6px;font-weight:600}
main{max-width:1100px;margin:0 auto;padding:22px 28px;display:flex;flex-direction:column;gap:16px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(160px,1fr));gap:16px}
.card{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:14px 16px}
.big{font-size:26px;font-weight:650;margin:0;font-variant-numeric:tabular-nums}
.hint{color:var(--muted);font-size:13px;margin:4px 0 0}
.muted{color:var(--muted)}
.ok{color:var(--ok)}.bad{color:var(--bad)}.warn{color:var(--warn)}
.pill{display:inline-block;font-size:13px;font-weight:600;padding:2px 10px;border-radius:999px;margin:0}
.pill.ok{background:var(--okbg)}.pill.warn{background:var(--warnbg)}.pill.bad{background:var(--badbg)}.pill.muted{background:var(--bg)}
.big .pill{font-size:18px}
ul{margin:0;padding-left:18px;font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:14px}
#last-restart{margin:0}
.actions{display:flex;align-items:center;gap:12px;flex-wrap:wrap}
.row{display:flex;gap:8px;flex-wrap:wrap;margin-top:6px}
input{flex:1;min-width:220px;padding:8px 10px;border:1px solid var(--line);border-radius:8px;background:var(--bg);color:var(--fg);font:inherit}
.btn{font:inherit;font-weight:600;padding:8px 18px;border-radius:8px;border:1px solid var(--line);background:var(--card);color:var(--fg);cursor:pointer}
.btn:disabled{opacity:.55;cursor:progress}
.btn.primary{background:var(--accent);border-color:var(--accent);color:#fff}
.btn.danger{color:var(--bad);border-color:var(--bad)}
.btn.danger.armed{background:var(--bad);color:#fff}
.btn.ghost{background:transparent}
#message{margin:0}
.hidden{display:none}
footer{max-width:1100px;margin:0 auto;padding:0 28px 24px;font-size:13px}
code{font-size:12px}
`;

const SCRIPT = `
(() => {
  "use strict";
  const meta = (name) => document.querySelector('meta[name="' + name + '"]').content;
  const base = meta("admin-base");
  const csrf = meta("admin-csrf");
  const auth = meta("admin-auth");
  const KEY = "admin-token:" + base;
  const $ = (id) => document.getElementById(id);
  let busy = false;
  let armTimer = 0;

  function token() {
    try { return sessionStorage.getItem(KEY) || ""; } catch { return ""; }
  }
  function headers(extra) {
    const h = Object.assign({ Accept: "application/json" }, extra || {});
    if (auth === "token" && token()) h.Authorization = "Bearer " + token();
    return h;
  }
  function text(id, value) { $(id).textContent = String(value); }
  function cls(id, name) {
    const el = $(id);
    el.classList.remove("ok", "bad", "warn", "muted");
    el.classList.add(name);
  }
  function duration(ms) {
    const s = Math.max(0, Math.floor(ms / 1000));
    const d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24;
    const m = Math.floor(s / 60) % 60, sec = s % 60;
    if (d > 0) return d + " d " + h + " h";
    if (h > 0) return h + " h " + m + " min";
    if (m > 0) return m + " min " + sec + " s";
    return sec + " s";
  }
  function lastRestart(r, restarts) {
    if (!r) {
      return restarts === 0
        ? "none yet"
        : "none since this generation took over (restart #" + restarts + ")";
    }
    const when = new Date(r.at).toISOString();
    const took = (r.durationMs / 1000).toFixed(1) + " s";
    return r.ok
      ? "ok: pid " + r.pid + " took over in " + took + " (" + r.trigger + ", " + when + ")"
      : "failed after " + took + ": " + (r.reason || "unknown reason") + " (" + r.trigger + ", " + when + ")";
  }
  function conn(state, label) { text("conn", label); cls("conn", state); }
  function say(message, state) { text("message", message); cls("message", state || "muted"); }
  function needToken(why) {
    $("token-form").classList.remove("hidden");
    conn("warn", why);
  }

  function render(s) {
    text("pid", s.pid);
    text("generation", s.generation);
    text("uptime", duration(s.uptimeMs));
    text("since-first", duration(s.now - s.firstStartedAt));
    text("phase", s.phase);
    cls("phase", s.phase === "serving" ? "ok" : "warn");
    text("inflight", s.inFlight);
    text("connections", s.connections);
    text("restarts", s.restarts);
    const list = $("listeners");
    list.replaceChildren(...s.listeners.map((l) => {
      const li = document.createElement("li");
      li.textContent = l;
      return li;
    }));
    text("last-restart", lastRestart(s.lastRestart, s.restarts));
    cls("last-restart", s.lastRestart ? (s.lastRestart.ok ? "ok" : "bad") : "muted");
    text("updated", "updated " + new Date().toLocaleTimeString());
    document.title = "Admin · pid " + s.pid;
    if (auth === "token") $("token-form").classList.add("hidden");
  }

  async function refresh() {
    if (auth === "token" && !token()) { needToken("token needed"); return; }
    try {
      const r = await fetch(base + "/status", {
        headers: headers(), cache: "no-store", credentials: "same-origin",
      });
      if (r.status === 401) { needToken("token refused"); return; }
      if (!r.ok) { conn("bad", "status " + r.status); return; }
      render(await r.json());
      conn("ok", "live");
    } catch {
      conn("warn", "unreachable, retrying");
    }
  }

  async function post(action) {
    const r = await fetch(base + "/" + action, {
      method: "POST",
      headers: headers({ "Content-Type": "application/json", "X-Admin-CSRF": csrf }),
      body: "{}",
      cache: "no-store",
      credentials: "same-origin",
    });
    let body = {};
    try { body = await r.json(); } catch { /* no JSON */ }
    return { status: r.status, body };
  }

  function setBusy(on) {
    busy = on;
    $("restart").disabled = on;
    $("shutdown").disabled = on;
  }

  $("restart").addEventListener("click", async () => {
    if (busy) return;
    setBusy(true);
    say("Restarting: waiting for the new generation to serve…");
    try {
      const { status, body } = await post("restart");
      if (status === 200) {
        say("Generation " + body.generation + " serves (pid " + body.pid + ").", "ok");
      } else if (status === 401) {
        needToken("token refused");
        say("Restart refused: token needed.", "bad");
      } else {
        say("Restart failed (" + status + "): " + (body.error || "no reason") + ". The old generation keeps serving.", "bad");
      }
    } catch (e) {
      say("Restart: connection lost (" + e + ").", "bad");
    } finally {
      setBusy(false);
      refresh();
    }
  });

  $("shutdown").addEventListener("click", async () => {
    if (busy) return;
    const button = $("shutdown");
    if (!button.classList.contains("armed")) {
      button.classList.add("armed");
      button.textContent = "Confirm shutdown";
      say("Click again within 5 s to shut the process down.", "warn");
      armTimer = setTimeout(() => {
        button.classList.remove("armed");
        button.textContent = "Shutdown";
        say("");
      }, 5000);
      return;
    }
    clearTimeout(armTimer);
    button.classList.remove("armed");
    button.textContent = "Shutdown";
    setBusy(true);
    try {
      const { status, body } = await post("shutdown");
      if (status === 202) {
        say("Shutting down: the process drains and exits.", "warn");
        return;
      }
      say("Shutdown refused (" + status + "): " + (body.error || "no reason") + ".", "bad");
      if (status === 401) needToken("token refused");
    } catch (e) {
      say("Shutdown: connection lost (" + e + ").", "bad");
    }
    setBusy(false);
  });

  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const value = $("token").value.trim();
    try { sessionStorage.setItem(KEY, value); } catch { /* private mode */ }
    $("token").value = "";
    refresh();
  });
  $("forget").addEventListener("click", () => {
    try { sessionStorage.removeItem(KEY); } catch { /* private mode */ }
    needToken("token forgotten");
  });

  refresh();
  setInterval(refresh, 2000);
})();
`;
