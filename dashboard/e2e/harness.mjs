// A real `mini-xdr serve` on a fresh PostgreSQL database, its own NATS prefix and a free port,
// and Debian's Chromium driven by playwright-core. Nothing is mocked.
import { execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createServer } from "node:net";
import { resolve } from "node:path";
import { chromium } from "playwright-core";

export const repo = resolve(new URL("../..", import.meta.url).pathname);

export const CHROMIUM_ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];

function freePort() {
  return new Promise((ok, fail) => {
    const server = createServer();
    server.once("error", fail);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => ok(port));
    });
  });
}

function binary() {
  if (process.env.MINI_XDR_BIN) return process.env.MINI_XDR_BIN;
  const target = process.env.CARGO_TARGET_DIR ?? resolve(process.env.HOME ?? "/root", ".cache/mini-xdr-target");
  return resolve(target, "debug/mini-xdr");
}

/** Starts the server (with `env` added to its environment); `stop()` ends it and drops its database. */
export async function startServer(env = {}) {
  const admin = process.env.XDR_E2E_ADMIN_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
  const suffix = randomBytes(5).toString("hex");
  const database = `xdr_dashboard_e2e_${suffix}`;
  execFileSync("psql", [admin, "-qc", `CREATE DATABASE ${database}`]);
  const owner = admin.replace(/\/[^/]*$/, `/${database}`);
  // The runtime logins, made as an operator makes them (deploy/db-logins.sql); the server
  // refuses to run its API as the owner. Trust auth on loopback: the passwords are unused.
  const logins = { api: "xdr_e2e_api_login", worker: "xdr_e2e_worker_login" };
  execFileSync("psql", [owner, "-q", "-v", "ON_ERROR_STOP=1",
    "-v", `api_login=${logins.api}`, "-v", "api_password=unused",
    "-v", `worker_login=${logins.worker}`, "-v", "worker_password=unused",
    "-f", resolve(repo, "deploy/db-logins.sql")]);
  const loginUrl = (login) => owner.replace("postgres://postgres@", `postgres://${login}@`);
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const log = [];
  const child = spawn(binary(), ["serve"], {
    cwd: repo,
    env: {
      ...process.env,
      DATABASE_URL: loginUrl(logins.worker),
      XDR_API_DATABASE_URL: loginUrl(logins.api),
      XDR_MIGRATE_DATABASE_URL: owner,
      NATS_URL: process.env.NATS_URL ?? "nats://127.0.0.1:4222",
      XDR_NATS_PREFIX: `dash${suffix}`,
      XDR_BIND: `127.0.0.1:${port}`,
      JWT_SECRET_KEY: randomBytes(32).toString("hex"),
      ENCRYPTION_KEY: randomBytes(32).toString("hex"),
      XDR_DASHBOARD_DIR: resolve(repo, "dashboard/dist"),
      RUST_LOG: process.env.RUST_LOG ?? "warn",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout.on("data", (d) => log.push(String(d)));
  child.stderr.on("data", (d) => log.push(String(d)));
  const exited = new Promise((ok) => child.once("exit", ok));
  const deadline = Date.now() + 90_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`mini-xdr serve exited (${child.exitCode}):\n${log.join("")}`);
    const ready = await fetch(`${url}/readyz`).then((r) => r.ok).catch(() => false);
    if (ready) break;
    if (Date.now() > deadline) throw new Error(`mini-xdr serve not ready in 90 s:\n${log.join("")}`);
    await new Promise((r) => setTimeout(r, 250));
  }
  return {
    url,
    log,
    async stop() {
      child.kill("SIGTERM");
      await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
      if (child.exitCode === null) child.kill("SIGKILL");
      try {
        execFileSync("psql", [admin, "-qc", `DROP DATABASE IF EXISTS ${database} WITH (FORCE)`]);
      } catch {
        /* a leftover test database is harmless */
      }
    },
  };
}

export async function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
    headless: true,
    args: CHROMIUM_ARGS,
  });
}

/** REST and GraphQL calls from the test itself (ingest keys, checks against the API). */
export async function api(url, path, { token, body, headers = {} } = {}) {
  const response = await fetch(`${url}${path}`, {
    method: body === undefined ? "GET" : "POST",
    headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers },
    body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await response.text();
  let json;
  try { json = JSON.parse(text); } catch { json = text; }
  return { status: response.status, headers: response.headers, json };
}

export async function graphql(url, token, query, variables = {}) {
  const r = await api(url, "/graphql", { token, body: { query, variables } });
  if (r.json.errors) throw new Error(`GraphQL error: ${JSON.stringify(r.json.errors)}`);
  return r.json.data;
}
