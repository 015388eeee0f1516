// Fails when src/gql is not what `npm run codegen` makes from graphql/schema.graphql and the
// documents in src/: the dashboard cannot drift from the schema.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, cpSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";

const root = new URL("..", import.meta.url).pathname;
const generated = join(root, "src/gql");
const saved = mkdtempSync(join(tmpdir(), "xdr-gql-"));
cpSync(generated, saved, { recursive: true });
const read = (dir) => Object.fromEntries(readdirSync(dir).sort().map((f) => [f, readFileSync(join(dir, f), "utf8")]));
try {
  execFileSync("npx", ["graphql-codegen", "--config", "codegen.ts", "--silent"], { cwd: root, stdio: "inherit" });
  const before = read(saved);
  const after = read(generated);
  const stale = [...new Set([...Object.keys(before), ...Object.keys(after)])].filter((f) => before[f] !== after[f]);
  if (stale.length) {
    console.error(`dashboard/src/gql is stale (${stale.join(", ")}): run \`npm run codegen\` in dashboard/ and commit it`);
    process.exitCode = 1;
  } else {
    console.log("codegen: src/gql is current");
  }
} finally {
  // Leave the tree as it was, stale or not: the check reports, it does not fix.
  rmSync(generated, { recursive: true, force: true });
  cpSync(saved, generated, { recursive: true });
  rmSync(saved, { recursive: true, force: true });
}
