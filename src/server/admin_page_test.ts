/**
 * The admin page: its content and headers, and in a real browser (headless Chromium; skipped without it, a failure in strict mode).
 */

import {
  CHROMIUM as CHROMIUM_CAPABILITY,
  CHROMIUM_PATH,
  has,
} from "../../tests/capabilities.ts";
import { assert, assertEquals, assertMatch } from "../../tests/assert.ts";
import {
  assertSafeHeaders,
  FakeProcess,
  TOKEN,
  waitFor,
  withAdmin,
} from "../../tests/admin_harness.ts";

// ---------------------------------------------------------------------------
// The page

Deno.test("admin: the page shows the process and is locked down", async () => {
  await withAdmin({}, async (h) => {
    const reply = await h.call("/debug/admin");
    assertEquals(reply.status, 200);
    assertSafeHeaders(reply, "page");
    assertMatch(reply.headers.get("content-type")!, /^text\/html/);
    const csp = reply.headers.get("content-security-policy")!;
    const nonce = csp.match(/script-src 'nonce-([0-9a-f]{32})'/)?.[1];
    assert(nonce, `no script nonce in ${csp}`);
    assert(csp.includes(`style-src 'nonce-${nonce}'`), csp);
    for (
      const directive of [
        "default-src 'none'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
        "form-action 'none'",
        "base-uri 'none'",
      ]
    ) {
      assert(csp.includes(directive), `${directive} missing from ${csp}`);
    }
    const html = reply.text;
    // Every script and style carries this response's nonce.
    const scripts = html.match(/<script\b[^>]*>/g) ?? [];
    const styles = html.match(/<style\b[^>]*>/g) ?? [];
    assert(scripts.length >= 1 && styles.length >= 1);
    for (const tag of [...scripts, ...styles]) {
      assert(tag.includes(`nonce="${nonce}"`), `${tag} lacks the nonce`);
    }
    // Self-contained: nothing to load from anywhere.
    for (
      const pattern of [/\bsrc=/, /<link\b/, /url\(/, /@import/, /https?:/]
    ) {
      assert(!pattern.test(html), `page contains ${pattern}`);
    }
    assert(!/\sstyle=/.test(html), "inline style attributes break the CSP");
    // The process, rendered at once.
    assertMatch(html, /id="pid">48211</);
    assertMatch(html, /id="generation">5</);
    assertMatch(html, /id="uptime">3 h 12 min</);
    assertMatch(html, /id="restarts">4</);
    assertMatch(html, /id="inflight">3</);
    assertMatch(html, /<li>\[::1\]:8199<\/li>/);
    assertMatch(
      html,
      /id="last-restart"[^>]*>none since this generation took over \(restart #4\)</,
    );
    assertMatch(html, /<button[^>]*id="restart"[^>]*>Restart</);
    assertMatch(html, /<button[^>]*id="shutdown"[^>]*>Shutdown</);
    // The CSRF token it embeds is the one actions need.
    const csrf = html.match(/name="admin-csrf" content="([0-9a-f]{64})"/)?.[1];
    assertEquals(csrf, await h.csrf());
    assertMatch(html, /name="admin-auth" content="loopback"/);
    assertMatch(html, /name="admin-base" content="\/debug\/admin"/);
    assertMatch(html, /id="token-form" class="card hidden"/);

    // A fresh nonce per response; the same CSRF token.
    const again = await h.call("/debug/admin/");
    assertEquals(again.status, 200);
    const nonce2 = again.headers.get("content-security-policy")!
      .match(/'nonce-([0-9a-f]+)'/)?.[1];
    assert(nonce2 && nonce2 !== nonce, "the nonce must change per response");
    assert(again.text.includes(`content="${csrf}"`));

    const head = await h.call("/debug/admin", { method: "HEAD" });
    assertEquals(head.status, 200);
    assertEquals(head.text, "");
    assertEquals(h.appHits, []);
  });
});

Deno.test("admin: values on the page are HTML-escaped", async () => {
  const fake = new FakeProcess();
  fake.status = () => ({
    ...FakeProcess.prototype.status.call(fake),
    listeners: ['unix:/tmp/<script>alert("x")</script>'],
    phase: "<b>odd</b>",
  });
  await withAdmin({}, async (h) => {
    const html = (await h.call("/debug/admin")).text;
    assert(!html.includes("<script>alert"), "a listener was not escaped");
    assert(!html.includes("<b>odd"), "the phase was not escaped");
    assert(html.includes("&#60;script&#62;alert(&#34;x&#34;)"));
  }, fake);
});

// ---------------------------------------------------------------------------
// In a real browser

const CHROMIUM = CHROMIUM_PATH;
// Skips the browser tests without it (strict mode: fails; capabilities.ts).
const haveChromium = has(CHROMIUM_CAPABILITY);

const CHROMIUM_FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--hide-scrollbars",
  "--window-size=1200,800",
];

/** Width and height from a PNG's IHDR chunk. */
function pngSize(png: Uint8Array): { width: number; height: number } {
  const signature = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
  assert(signature.every((b, i) => png[i] === b), "not a PNG");
  const view = new DataView(png.buffer, png.byteOffset, png.byteLength);
  return { width: view.getUint32(16), height: view.getUint32(20) };
}

Deno.test({
  name: "admin: browser: headless Chromium renders the page",
  ignore: !haveChromium,
  async fn() {
    await withAdmin({}, async (h) => {
      const dir = await Deno.makeTempDir({ prefix: "admin_chromium_" });
      try {
        const file = `${dir}/page.png`;
        const result = await new Deno.Command(CHROMIUM, {
          args: [
            ...CHROMIUM_FLAGS,
            `--user-data-dir=${dir}/profile`,
            `--screenshot=${file}`,
            h.base,
          ],
          stdout: "piped",
          stderr: "piped",
          signal: AbortSignal.timeout(60_000),
        }).output();
        const stderr = new TextDecoder().decode(result.stderr);
        assert(result.success, `chromium failed: ${stderr}`);
        const png = await Deno.readFile(file);
        assertEquals(pngSize(png), { width: 1200, height: 800 });
        // A blank 1200×800 PNG is a few KB; the page is far more.
        assert(
          png.byteLength > 20_000,
          `screenshot of ${png.byteLength} bytes`,
        );
        assertEquals(h.seen.length >= 1, true, "chromium never asked");
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    });
  },
});

/** The smallest Chrome DevTools Protocol client: commands and their results. */
class Cdp {
  #ws: WebSocket;
  #next = 1;
  #pending = new Map<
    number,
    { resolve(value: unknown): void; reject(error: Error): void }
  >();
  #closed: Promise<void>;

  private constructor(ws: WebSocket) {
    this.#ws = ws;
    this.#closed = new Promise((resolve) => {
      ws.addEventListener("close", () => resolve());
    });
    ws.addEventListener("message", (event) => {
      const message = JSON.parse(event.data);
      const pending = this.#pending.get(message.id);
      if (!pending) return; // an event
      this.#pending.delete(message.id);
      if (message.error) pending.reject(new Error(message.error.message));
      else pending.resolve(message.result);
    });
  }

  static async connect(url: string): Promise<Cdp> {
    const ws = new WebSocket(url);
    await new Promise((resolve, reject) => {
      ws.addEventListener("open", resolve, { once: true });
      ws.addEventListener(
        "error",
        () => reject(new Error(`cannot open ${url}`)),
        {
          once: true,
        },
      );
    });
    return new Cdp(ws);
  }

  // deno-lint-ignore no-explicit-any
  send(method: string, params: Record<string, unknown> = {}): Promise<any> {
    const id = this.#next++;
    const result = new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
    });
    this.#ws.send(JSON.stringify({ id, method, params }));
    return result;
  }

  async evaluate(expression: string): Promise<unknown> {
    const reply = await this.send("Runtime.evaluate", {
      expression,
      returnByValue: true,
      awaitPromise: true,
    });
    if (reply.exceptionDetails) {
      throw new Error(`page threw: ${JSON.stringify(reply.exceptionDetails)}`);
    }
    return reply.result.value;
  }

  async close(): Promise<void> {
    this.#ws.close();
    await this.#closed;
  }
}

/**
 * Opens `url` in headless Chromium with remote debugging, and gives `fn` a
 * DevTools connection to the page. Closes everything afterwards.
 */
async function withBrowserPage(
  url: string,
  fn: (page: Cdp) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "admin_cdp_" });
  const profile = `${dir}/profile`;
  const chromium = new Deno.Command(CHROMIUM, {
    args: [
      ...CHROMIUM_FLAGS,
      `--user-data-dir=${profile}`,
      "--remote-debugging-port=0",
      url,
    ],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(chromium.stderr).text();
  let page: Cdp | undefined;
  try {
    let port = "";
    await waitFor("DevToolsActivePort", async () => {
      const text = await Deno.readTextFile(`${profile}/DevToolsActivePort`)
        .catch(() => "");
      port = text.split("\n")[0];
      return /^\d+$/.test(port);
    }, 30_000);
    let pageWs = "";
    await waitFor("the page target", async () => {
      const targets = await fetch(`http://127.0.0.1:${port}/json/list`)
        .then((r) => r.json()).catch(() => []);
      const target = targets.find((t: { type: string; url: string }) =>
        t.type === "page" && t.url.startsWith(url)
      );
      pageWs = target?.webSocketDebuggerUrl ?? "";
      return pageWs !== "";
    }, 30_000);
    page = await Cdp.connect(pageWs);
    await waitFor(
      "the page to load",
      async () =>
        await page!.evaluate(
          "document.readyState === 'complete' && !!document.querySelector('#restart')",
        ) === true,
      20_000,
    );
    await fn(page);
  } finally {
    await page?.close();
    chromium.kill("SIGTERM");
    await chromium.status;
    await stderr;
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

function textOf(page: Cdp, selector: string): Promise<unknown> {
  return page.evaluate(
    `document.querySelector(${JSON.stringify(selector)})?.textContent ?? ""`,
  );
}

Deno.test({
  name: "admin: browser: clicking Restart restarts once and shows the new pid",
  ignore: !haveChromium,
  async fn() {
    const fake = new FakeProcess();
    fake.restartDelayMs = 300;
    await withAdmin({}, async (h) => {
      await withBrowserPage(h.base, async (page) => {
        await waitFor(
          "the page to poll the status",
          async () => /^updated /.test(String(await textOf(page, "#updated"))),
          20_000,
        );
        assertEquals(await textOf(page, "#pid"), "48211");
        assertEquals(await textOf(page, "#conn"), "live");

        await page.evaluate("document.querySelector('#restart').click()");
        await waitFor(
          "the page to show the new pid",
          async () => await textOf(page, "#pid") === "48377",
          20_000,
        );
        assertEquals(h.fake.restartCalls, [{ trigger: "admin" }]);
        assertEquals(await textOf(page, "#generation"), "6");
        assertEquals(await textOf(page, "#restarts"), "5");
        assertEquals(
          await textOf(page, "#message"),
          "Generation 6 serves (pid 48377).",
        );
        assertEquals(
          await textOf(page, "#last-restart"),
          "none since this generation took over (restart #5)",
        );
        assertEquals(
          await page.evaluate("document.querySelector('#restart').disabled"),
          false,
        );
        // The nonce'd style applies; the CSP forbids eval in the page.
        assertEquals(
          await page.evaluate(
            "getComputedStyle(document.querySelector('#restart')).borderRadius",
          ),
          "8px",
        );
        // A style without the nonce, as an injection would add, is refused.
        assertEquals(
          await page.evaluate(`(async () => {
            const style = document.createElement("style");
            style.textContent = "#pid { color: rgb(1, 2, 3) }";
            document.head.append(style);
            await new Promise((resolve) => setTimeout(resolve, 50));
            return getComputedStyle(document.querySelector("#pid")).color;
          })()`) !== "rgb(1, 2, 3)",
          true,
        );

        const shot = await page.send("Page.captureScreenshot", {
          format: "png",
        });
        const png = Uint8Array.from(atob(shot.data), (c) => c.charCodeAt(0));
        assert(png.byteLength > 20_000);
        const out = Deno.env.get("ADMIN_SCREENSHOT");
        if (out) await Deno.writeFile(out, png);
      });
    }, fake);
  },
});

Deno.test({
  name:
    "admin: browser: with a token, the page asks for it; Shutdown takes two clicks",
  ignore: !haveChromium,
  async fn() {
    await withAdmin({ token: TOKEN }, async (h) => {
      await withBrowserPage(h.base, async (page) => {
        assertEquals(
          await page.evaluate(
            "document.querySelector('#token-form').classList.contains('hidden')",
          ),
          false,
        );
        assertEquals(await textOf(page, "#pid"), "—");
        assertEquals(await textOf(page, "#conn"), "token needed");

        await page.evaluate(
          `document.querySelector('#token').value = ${JSON.stringify(TOKEN)};
           document.querySelector('#token-form').requestSubmit();`,
        );
        await waitFor(
          "the page to show the pid",
          async () => await textOf(page, "#pid") === "48211",
          20_000,
        );
        assertEquals(
          await page.evaluate(
            "document.querySelector('#token-form').classList.contains('hidden')",
          ),
          true,
        );
        assertEquals(
          await page.evaluate(
            "sessionStorage.getItem('admin-token:/debug/admin')",
          ),
          TOKEN,
        );

        await page.evaluate("document.querySelector('#shutdown').click()");
        assertEquals(await textOf(page, "#shutdown"), "Confirm shutdown");
        await new Promise((resolve) => setTimeout(resolve, 100));
        assertEquals(h.fake.shutdownCalls, 0);
        await page.evaluate("document.querySelector('#shutdown').click()");
        await waitFor("deps.shutdown()", () => h.fake.shutdownCalls === 1);
        await waitFor(
          "the page to say so",
          async () =>
            await textOf(page, "#message") ===
              "Shutting down: the process drains and exits.",
        );
        assertEquals(h.fake.restartCalls, []);
      });
    });
  },
});
