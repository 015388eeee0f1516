// The console end to end, in Debian's Chromium against a real `mini-xdr serve` (PostgreSQL,
// NATS): register, sign in, the real Cowrie log pushed through the ingest API while the queue
// is open (rows appear without a reload), the compromise incident's timeline and evidence,
// containment, reload keeps the session, sign out locks the way back, a second organization
// sees nothing of the first, an axe scan of every page, no CSP violation anywhere.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, mkdirSync } from "node:fs";
import { resolve } from "node:path";
import AxeBuilder from "@axe-core/playwright";
import { api, graphql, launchBrowser, repo, startServer } from "./harness.mjs";

const PASSWORD = "Dashboard-e2e-2026!";
const COWRIE = readFileSync(resolve(repo, "domain/tests/fixtures/cowrie.json"), "utf8");
const docs = resolve(repo, "docs");
let server, browser, context, page;
const cspViolations = [];
const axeFindings = [];
const timings = {};

function watch(p) {
  p.on("console", (m) => {
    if (/Content Security Policy|Refused to (load|execute|apply)/i.test(m.text())) cspViolations.push(`${p.url()}: ${m.text()}`);
  });
  p.on("pageerror", (e) => cspViolations.push(`${p.url()}: page error ${e.message}`));
}

async function scan(p, name) {
  const result = await new AxeBuilder({ page: p }).withTags(["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]).analyze();
  assert.ok(result.passes.length > 10, `axe ran on ${name}`);
  const bad = result.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  for (const v of bad) axeFindings.push(`${name}: ${v.id} (${v.impact}) ${v.help} — ${v.nodes.slice(0, 3).map((n) => n.target.join(" ")).join(", ")}`);
}

async function register(p, org, email) {
  await p.goto(`${server.url}/login`);
  await p.getByRole("link", { name: /Create.*organization/i }).click();
  await p.getByLabel("Organization name").fill(org);
  await p.getByLabel("Full name").fill("E2E Analyst");
  await p.getByLabel("Email").fill(email);
  await p.getByLabel("Password").fill(PASSWORD);
  await p.getByRole("button", { name: "Create organization" }).click();
  await p.getByRole("heading", { name: "Incidents" }).waitFor();
}

const email = `lead-${Date.now()}@e2e.example`;

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
  context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  page = await context.newPage();
  watch(page);
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

test("the server serves the console with a strict CSP, and the bundled GraphiQL", async () => {
  const index = await fetch(`${server.url}/incidents?status=OPEN`);
  assert.equal(index.status, 200);
  const csp = index.headers.get("content-security-policy") ?? "";
  assert.match(csp, /script-src 'self'/);
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
  const html = await index.text();
  assert.match(html, /<div id="root">/);
  assert.doesNotMatch(html, /<script(?![^>]*\bsrc=)[^>]*>/, "no inline script");
  const asset = html.match(/src="(\/assets\/[^"]+\.js)"/)[1];
  const js = await fetch(`${server.url}${asset}`);
  assert.match(js.headers.get("cache-control") ?? "", /immutable/);
  assert.equal((await fetch(`${server.url}/api/nothing-here`)).status, 404);
  const graphiql = await fetch(`${server.url}/graphql`);
  assert.match(await graphiql.text(), /<div id="graphiql">/);
  assert.doesNotMatch(await (await fetch(`${server.url}/graphql`)).text(), /unpkg|jsdelivr|cdn/i);
});

test("sign-in pages: register an organization in the browser, sign out, sign in", async () => {
  await page.goto(`${server.url}/`);
  await page.getByRole("button", { name: "Sign in" }).waitFor();
  await scan(page, "login");
  await page.getByRole("link", { name: /Create.*organization/i }).click();
  await page.getByLabel("Password").fill("short");
  assert.match(await page.getByRole("list", { name: "Requirements" }).innerText(), /12 characters\s*\(not yet\)/);
  await scan(page, "register");
  await register(page, "Dashboard E2E Org", email);
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.getByRole("button", { name: "Sign in" }).waitFor();
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill("Wrong-password-123!");
  await page.getByRole("button", { name: "Sign in" }).click();
  assert.match(await page.getByRole("alert").innerText(), /invalid|incorrect|credentials/i);
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("link", { name: "Incidents" }).waitFor();
  await page.getByRole("table", { name: "Incident queue" }).waitFor();
  await page.goto(`${server.url}/accept-invite?token=x`);
  await page.getByLabel("Invitation token").waitFor();
  await scan(page, "accept-invite");
});

test("the queue fills live while the real Cowrie log is pushed through the ingest API", async () => {
  // The rails: the lab's attackers are loopback addresses; protect only the server's own.
  await page.goto(`${server.url}/response`);
  await page.getByLabel("Protected ranges").fill("127.0.0.1/32");
  await page.getByRole("button", { name: "Save rails" }).click();
  await page.getByText("127.0.0.1/32", { exact: true }).waitFor();

  await page.getByRole("link", { name: "Incidents" }).click();
  await page.getByRole("table", { name: "Incident queue" }).waitFor();
  await page.getByText("No incidents match this view").waitFor();
  await page.evaluate(() => { window.__noReload = true; });
  const token = (await api(server.url, "/api/auth/login", { body: { email, password: PASSWORD } })).json.access_token;
  const key = (await graphql(server.url, token, `mutation { createIngestKey(name: "e2e") { key } }`)).createIngestKey.key;

  const pushed = Date.now();
  const ingest = await api(server.url, "/ingest/cowrie", { body: COWRIE, headers: { authorization: `Bearer ${key}` } });
  assert.equal(ingest.status, 200, JSON.stringify(ingest.json));
  assert.equal(ingest.json.stored, 234);
  const committed = Date.now();
  // The API's own view of the same incident, for the benchmark numbers printed at the end.
  const apiSeen = (async () => {
    for (;;) {
      const d = await graphql(server.url, token, `{ incidents(filter: { srcIp: "127.0.0.3" }, first: 1) { edges { node { id } } } }`);
      if (d.incidents.edges.length) return Date.now();
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  const rows = page.getByRole("table", { name: "Incident queue" }).locator("tbody tr");
  await rows.filter({ hasText: "127.0.0.3" }).first().waitFor({ timeout: 60_000 });
  timings.rowVisibleMs = Date.now() - committed;
  timings.apiVisibleMs = (await apiSeen) - committed;
  timings.ingestRequestMs = committed - pushed;
  await rows.filter({ hasText: "127.0.0.2" }).first().waitFor({ timeout: 60_000 });
  await rows.filter({ hasText: "127.0.0.5" }).first().waitFor({ timeout: 60_000 });
  // The source opens as a brute force and escalates to a critical compromise: the row changes in place.
  const compromise = rows.filter({ hasText: "127.0.0.3" }).filter({ hasText: /compromise/i }).first();
  await compromise.waitFor({ timeout: 60_000 });
  assert.match(await compromise.innerText(), /critical/i);
  assert.equal(await rows.filter({ hasText: "127.0.0.3" }).count(), 1, "one incident per source, updated in place");
  assert.equal(await page.evaluate(() => window.__noReload), true, "the queue updated without a reload");
  await page.getByRole("group", { name: "By severity" }).getByRole("button", { name: /critical\s*1/i }).waitFor();

  // One click excludes a value; the URL carries the view.
  await compromise.getByRole("button", { name: "Exclude src 127.0.0.3" }).click();
  await page.waitForURL(/-src=127\.0\.0\.3/);
  await rows.filter({ hasText: "127.0.0.3" }).waitFor({ state: "detached" });
  await page.getByRole("button", { name: /Remove filter src ≠ 127.0.0.3/ }).click();
  await rows.filter({ hasText: "127.0.0.3" }).first().waitFor();
  await scan(page, "queue");
  await page.screenshot({ path: resolve(docs, "dashboard-queue.png") });
});

test("the compromise incident: why, timeline, evidence with the raw record, containment", async () => {
  const row = page.getByRole("table", { name: "Incident queue" }).locator("tbody tr").filter({ hasText: "127.0.0.3" }).first();
  await row.getByRole("link", { name: "127.0.0.3" }).click();
  await page.getByRole("heading", { name: "Timeline" }).waitFor();
  await page.getByRole("heading", { name: /compromise from 127\.0\.0\.3/i }).waitFor();
  const timeline = page.locator("ol.timeline li");
  assert.ok((await timeline.count()) >= 2, "detected and evidence at least");
  assert.match(await timeline.first().innerText(), /detected/i);
  await page.getByRole("link", { name: /^T1110/ }).first().waitFor();
  assert.match(await page.getByRole("link", { name: /^T1110/ }).first().getAttribute("href"), /^https:\/\/attack\.mitre\.org\/techniques\/T1110/);
  const evidence = page.getByRole("table", { name: "Evidence events" });
  assert.ok((await evidence.locator("tbody tr").count()) > 5, "evidence events listed");
  await evidence.getByRole("button", { name: "Raw record" }).first().click();
  assert.match(await page.locator("pre.json").first().innerText(), /"eventid": "cowrie\./);

  await page.getByRole("button", { name: "Contain 127.0.0.3" }).click();
  const actions = page.getByRole("table", { name: "Actions on this incident" });
  await actions.getByText("block ip").waitFor();
  await timeline.filter({ hasText: /action requested/i }).first().waitFor();
  await scan(page, "incident");
  await page.screenshot({ path: resolve(docs, "dashboard-incident.png"), fullPage: false });

  await page.reload();
  await page.getByRole("heading", { name: "Timeline" }).waitFor();
  await page.getByRole("button", { name: "Sign out" }).waitFor();
});

test("the other pages render and pass the accessibility scan", async () => {
  for (const [path, heading] of [["/overview", "Overview"], ["/events", "Events"], ["/response", "Response"], ["/admin", "Administration"]]) {
    await page.goto(`${server.url}${path}`);
    await page.getByRole("heading", { name: heading, level: 1 }).waitFor();
    await page.waitForLoadState("networkidle");
    await scan(page, path);
  }
  await page.goto(`${server.url}/events?src=127.0.0.3`);
  await page.getByRole("table", { name: "Events" }).locator("tbody tr").first().waitFor();
  await page.goto(`${server.url}/graphql`);
  await page.locator(".graphiql-container").waitFor({ timeout: 30_000 });
});

test("a viewer invited from the admin page reads incidents but gets no mutation buttons", async () => {
  await page.goto(`${server.url}/admin`);
  const invite = page.getByRole("form", { name: "Invite a user" });
  const viewerEmail = `viewer-${Date.now()}@e2e.example`;
  await invite.getByLabel("Email").fill(viewerEmail);
  await invite.getByLabel("Full name").fill("E2E Viewer");
  await invite.getByLabel("Role").selectOption("VIEWER");
  await invite.getByRole("button", { name: "Invite" }).click();
  const token = await page.locator(".shown-once code.secret").innerText();
  const viewer = await browser.newContext();
  const p = await viewer.newPage();
  watch(p);
  await p.goto(`${server.url}/accept-invite?token=${encodeURIComponent(token)}`);
  await p.getByLabel("Password").fill(PASSWORD);
  await p.getByRole("button", { name: "Set password" }).click();
  await p.getByRole("link", { name: "Sign in" }).click();
  await p.getByLabel("Email").fill(viewerEmail);
  await p.getByLabel("Password").fill(PASSWORD);
  await p.getByRole("button", { name: "Sign in" }).click();
  const rows = p.getByRole("table", { name: "Incident queue" }).locator("tbody tr");
  await rows.filter({ hasText: "127.0.0.3" }).first().waitFor();
  assert.equal(await p.getByRole("button", { name: "Apply to selected" }).count(), 0, "no bulk change for viewers");
  assert.equal(await p.getByRole("link", { name: "Administration" }).count(), 0);
  await rows.filter({ hasText: "127.0.0.3" }).getByRole("link", { name: "127.0.0.3" }).click();
  await p.getByRole("heading", { name: "Timeline" }).waitFor();
  assert.equal(await p.getByRole("button", { name: /^Contain/ }).count(), 0, "no containment for viewers");
  assert.equal(await p.getByRole("button", { name: "Change status" }).count(), 0);
  await p.goto(`${server.url}/response`);
  await p.getByRole("heading", { name: "Response", level: 1 }).waitFor();
  assert.equal(await p.getByRole("button", { name: "Save rails" }).count(), 0);
  await viewer.close();
});

test("sign out revokes the session and the way back leads to the sign-in page", async () => {
  const before = await context.cookies();
  assert.ok(before.some((c) => c.name === "xdr_refresh" && c.httpOnly && c.sameSite === "Strict" && c.path === "/api/auth/refresh"));
  await page.goto(`${server.url}/incidents`);
  await page.getByRole("table", { name: "Incident queue" }).locator("tbody tr a").first().click();
  await page.getByRole("heading", { name: "Timeline" }).waitFor();
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.getByRole("button", { name: "Sign in" }).waitFor();
  assert.ok(!(await context.cookies()).some((c) => c.name === "xdr_refresh"), "refresh cookie cleared");
  // Back lands on the queue's history entry, which now sends the visitor to the sign-in page.
  await page.goBack();
  await page.getByRole("button", { name: "Sign in" }).waitFor();
  assert.match(page.url(), /\/login/);
  assert.equal(await page.getByRole("table", { name: "Incident queue" }).count(), 0);
  assert.equal(await page.getByRole("heading", { name: "Timeline" }).count(), 0);
  await page.reload();
  await page.getByRole("button", { name: "Sign in" }).waitFor();
  // No token is kept where page script could find it later (GraphiQL keeps its tabs there, never headers).
  const stored = await page.evaluate(() => JSON.stringify({ ...localStorage, ...sessionStorage }));
  assert.doesNotMatch(stored, /eyJ[\w-]+\.eyJ/, "no JWT in web storage");
});

test("a second organization sees none of the first's data", async () => {
  const other = await browser.newContext();
  const p = await other.newPage();
  watch(p);
  await register(p, "Second E2E Org", `other-${Date.now()}@e2e.example`);
  await p.getByText("No incidents match this view").waitFor();
  assert.equal(await p.getByRole("table", { name: "Incident queue" }).locator("tbody tr").count(), 0);
  await p.goto(`${server.url}/events`);
  await p.getByText("No events match.").waitFor();
  const firstOrgToken = (await api(server.url, "/api/auth/login", { body: { email, password: PASSWORD } })).json.access_token;
  const id = (await graphql(server.url, firstOrgToken, `{ incidents(first: 1) { edges { node { id } } } }`)).incidents.edges[0].node.id;
  await p.goto(`${server.url}/incidents/${id}`);
  await p.getByRole("heading", { name: "Incident not found" }).waitFor();
  await other.close();
});

test("an account with a second factor signs in in two steps and sees its sessions", async () => {
  const mfaEmail = `mfa-${Date.now()}@e2e.example`;
  const registered = await api(server.url, "/api/auth/register", {
    body: { organization_name: "MFA E2E Org", admin_email: mfaEmail, admin_password: PASSWORD, admin_name: "MFA Admin" },
  });
  const token = registered.json.access_token;
  const started = await graphql(server.url, token, "mutation { startSecondFactorEnrolment { otpauthUri secret } }");
  const { createHmac } = await import("node:crypto");
  const secret = base32Decode(started.startSecondFactorEnrolment.secret);
  const code = totp(createHmac, secret, Math.floor(Date.now() / 1000 / 30));
  const confirmed = await graphql(server.url, token, "mutation($c: String!) { confirmSecondFactorEnrolment(code: $c) }", { c: code });
  const [recovery] = confirmed.confirmSecondFactorEnrolment;

  const ctx = await browser.newContext();
  const p = await ctx.newPage();
  watch(p);
  await p.goto(`${server.url}/login`);
  await p.getByLabel("Email").fill(mfaEmail);
  await p.getByLabel("Password").fill(PASSWORD);
  await p.getByRole("button", { name: "Sign in" }).click();
  await p.getByLabel("Authentication code").fill(recovery);
  await p.getByRole("button", { name: "Sign in" }).click();
  await p.getByRole("heading", { name: "Incidents" }).waitFor();
  await p.goto(`${server.url}/admin`);
  const sessions = p.getByRole("table", { name: "Sessions" }).locator("tbody tr");
  await sessions.filter({ hasText: "this session" }).first().waitFor();
  await scan(p, "admin-with-sessions");
  await ctx.close();
});

function base32Decode(text) {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let [buffer, bits, out] = [0, 0, []];
  for (const c of text) {
    buffer = ((buffer << 5) | alphabet.indexOf(c)) & 0xffff;
    bits += 5;
    if (bits >= 8) { bits -= 8; out.push((buffer >> bits) & 0xff); }
  }
  return Buffer.from(out);
}

/** RFC 6238 with HMAC-SHA1, six digits. */
function totp(createHmac, secret, step) {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(step));
  const mac = createHmac("sha1", secret).update(counter).digest();
  const offset = mac[mac.length - 1] & 0x0f;
  return String((mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000).padStart(6, "0");
}

test("no CSP violation and no serious or critical accessibility violation on any page", () => {
  assert.deepEqual(cspViolations, []);
  assert.deepEqual(axeFindings, []);
  if (timings.rowVisibleMs !== undefined)
    console.log(`# timings: ingest request ${timings.ingestRequestMs} ms; after commit: API sees the incident ${timings.apiVisibleMs} ms, row visible in the queue ${timings.rowVisibleMs} ms`);
});

mkdirSync(docs, { recursive: true });
