// A console left open outlives its access token: the server ends a subscription once the
// token its socket was opened with expires (re-checked every 2 s), so the console must renew
// the token and carry its live queries over to the new one. Run against a server whose
// access tokens live one minute.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { api, graphql, launchBrowser, repo, startServer } from "./harness.mjs";

const PASSWORD = "Session-e2e-2026!";
const COWRIE = readFileSync(resolve(repo, "domain/tests/fixtures/cowrie.json"), "utf8");
const TOKEN_MINUTES = 1;
let server, browser, page;

before(async () => {
  server = await startServer({ XDR_ACCESS_TOKEN_MINUTES: String(TOKEN_MINUTES) });
  browser = await launchBrowser();
  page = await (await browser.newContext()).newPage();
  if (process.env.E2E_DEBUG) page.on("websocket", (ws) => { console.log("ws open", Date.now()); ws.on("framesent", (f) => console.log("sent", Date.now(), String(f.payload).slice(0, 120))); ws.on("framereceived", (f) => console.log("recv", Date.now(), String(f.payload).slice(0, 160))); ws.on("close", () => console.log("ws close", Date.now())); });
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

test("the queue stays live after the access token it subscribed with has expired", async () => {
  const email = `renewal-${Date.now()}@e2e.example`;
  await page.goto(`${server.url}/login`);
  await page.getByRole("link", { name: /Create.*organization/i }).click();
  await page.getByLabel("Organization name").fill("Session Renewal Org");
  await page.getByLabel("Full name").fill("E2E Analyst");
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByRole("button", { name: "Create organization" }).click();
  await page.getByRole("heading", { name: "Incidents" }).waitFor();
  await page.getByText("No incidents match this view").waitFor();
  const live = page.getByRole("status").filter({ hasText: /^Live|interrupted/ });
  assert.equal(await live.innerText(), "Live");
  await page.evaluate(() => { window.__noReload = true; });

  // Past the first token's expiry, and past a few of the server's 2 s re-checks.
  const interrupted = page.getByText("Live updates interrupted");
  const deadline = Date.now() + TOKEN_MINUTES * 60_000 + 10_000;
  while (Date.now() < deadline) {
    assert.equal(await interrupted.count(), 0, "the subscription ended when its token expired");
    await new Promise((r) => setTimeout(r, 1_000));
  }

  const token = (await api(server.url, "/api/auth/login", { body: { email, password: PASSWORD } })).json.access_token;
  const key = (await graphql(server.url, token, `mutation { createIngestKey(name: "renewal") { key } }`)).createIngestKey.key;
  const ingest = await api(server.url, "/ingest/cowrie", { body: COWRIE, headers: { authorization: `Bearer ${key}` } });
  assert.equal(ingest.status, 200, JSON.stringify(ingest.json));
  const rows = page.getByRole("table", { name: "Incident queue" }).locator("tbody tr");
  await rows.filter({ hasText: "127.0.0.3" }).first().waitFor({ timeout: 60_000 });
  assert.equal(await page.evaluate(() => window.__noReload), true, "the rows arrived live, without a reload");
  assert.equal(await live.innerText(), "Live");
});
