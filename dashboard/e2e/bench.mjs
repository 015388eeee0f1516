// Benchmark (not a test): the queue's first load on a cold cache, and the time from an
// incident change committed to its row changing in an open queue, both in Chromium, next to
// the API's own latency for the same query. `node e2e/bench.mjs` (needs a built dist/ and the
// binary, like the e2e run); prints a Markdown table for docs/BENCHMARKS.md.
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { api, graphql, launchBrowser, repo, startServer } from "./harness.mjs";

const RUNS = Number(process.env.BENCH_RUNS ?? 10);
const PASSWORD = "Dashboard-bench-2026!";
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const p90 = (xs) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * 0.9))];

const server = await startServer();
const browser = await launchBrowser();
try {
  const reg = await api(server.url, "/api/auth/register", {
    body: { organization_name: "Bench Org", admin_email: "bench@bench.example", admin_password: PASSWORD, admin_name: "Bench" },
  });
  const token = reg.json.access_token;
  const key = (await graphql(server.url, token, `mutation { createIngestKey(name: "bench") { key } }`)).createIngestKey.key;
  const cowrie = readFileSync(resolve(repo, "domain/tests/fixtures/cowrie.json"), "utf8");
  await api(server.url, "/ingest/cowrie", { body: cowrie, headers: { authorization: `Bearer ${key}` } });
  for (;;) {
    const d = await graphql(server.url, token, `{ incidents(first: 10) { edges { node { id } } } }`);
    if (d.incidents.edges.length >= 4) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  // The same selection as the queue's Incidents operation (src/operations.ts).
  const QUERY = `query { incidents(first: 50) { edges { cursor node { id srcIp status severity category riskScore confidence firstSeen lastSeen eventCount detectors attackTechniques model } } pageInfo { hasNextPage endCursor } } stats(since: "1970-01-01T00:00:00Z") { incidentsByStatus { key count } incidentsBySeverity { key count } } }`;
  const apiTimes = [];
  for (let i = 0; i < RUNS * 3; i++) {
    const t = performance.now();
    await graphql(server.url, token, QUERY);
    apiTimes.push(performance.now() - t);
  }

  // Cold first load: a fresh context (empty cache) that signs in through the login page, then
  // the queue from navigation start to its rows on screen.
  const firstLoad = [];
  let bytes = 0;
  for (let i = 0; i < RUNS; i++) {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`${server.url}/login`);
    await page.getByLabel("Email").fill("bench@bench.example");
    await page.getByLabel("Password").fill(PASSWORD);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("table", { name: "Incident queue" }).locator("tbody tr").first().waitFor();
    // Now the real cold load of /incidents: new context with the session cookie only.
    const cookies = await context.cookies();
    await context.close();
    const cold = await browser.newContext();
    await cold.addCookies(cookies);
    const p = await cold.newPage();
    let transferred = 0;
    p.on("response", async (r) => { transferred += Number((await r.headerValue("content-length")) ?? 0); });
    const t = Date.now();
    await p.goto(`${server.url}/incidents`, { waitUntil: "commit" });
    await p.getByRole("table", { name: "Incident queue" }).locator("tbody tr").nth(3).waitFor();
    firstLoad.push(Date.now() - t);
    bytes = transferred;
    await cold.close();
  }

  // Commit → visible: with the queue open, change an incident's status through the API and
  // time until its row shows the new status.
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${server.url}/login`);
  await page.getByLabel("Email").fill("bench@bench.example");
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByRole("button", { name: "Sign in" }).click();
  const row = page.getByRole("table", { name: "Incident queue" }).locator("tbody tr").filter({ hasText: "127.0.0.5" });
  await row.waitFor();
  const id = (await graphql(server.url, token, `{ incidents(filter: { srcIp: "127.0.0.5" }) { edges { node { id } } } }`)).incidents.edges[0].node.id;
  const visible = [];
  const mutation = [];
  for (let i = 0; i < RUNS; i++) {
    const status = i % 2 === 0 ? "CONTAINED" : "OPEN";
    const t = Date.now();
    await graphql(server.url, token, `mutation($id: ID!, $s: IncidentStatus!) { updateIncidentStatus(id: $id, status: $s) { id } }`, { id, s: status });
    mutation.push(Date.now() - t);
    await row.filter({ hasText: status.toLowerCase() }).waitFor();
    visible.push(Date.now() - t);
  }
  const sizes = JSON.parse(readFileSync(resolve(repo, "dashboard/dist/sizes.json"), "utf8"));
  console.log(`| measurement | median | p90 |`);
  console.log(`|---|---|---|`);
  console.log(`| API: the queue's query (incidents(first: 50) + counts), POST /graphql | ${median(apiTimes).toFixed(1)} ms | ${p90(apiTimes).toFixed(1)} ms |`);
  console.log(`| Chromium: cold first load of /incidents → 4 rows on screen (session restored from the cookie) | ${median(firstLoad)} ms | ${p90(firstLoad)} ms |`);
  console.log(`| API: updateIncidentStatus (returns once projected) | ${median(mutation)} ms | ${p90(mutation)} ms |`);
  console.log(`| Chromium: status change sent → the row shows it (subscription + refetch) | ${median(visible)} ms | ${p90(visible)} ms |`);
  console.log(`\nfirst-load gzip bytes (build): ${sizes.firstLoadGzipBytes}; bytes transferred on a cold load: ${bytes}; runs: ${RUNS}`);
} finally {
  await browser.close();
  await server.stop();
}
