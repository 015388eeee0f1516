// Writes a .gz beside every text file of dist/: the server sends it to clients that accept
// gzip, so no compression runs per request. Prints the gzip size of the console's first load.
import { readdirSync, readFileSync, writeFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { gzipSync, constants } from "node:zlib";

const dist = new URL("../dist/", import.meta.url).pathname;
const text = /\.(html|js|css|svg|json|map|txt)$/;
const sizes = {};
function walk(dir) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) walk(path);
    else if (text.test(name) && !name.endsWith(".map")) {
      const gz = gzipSync(readFileSync(path), { level: constants.Z_BEST_COMPRESSION });
      writeFileSync(`${path}.gz`, gz);
      sizes[path.slice(dist.length)] = gz.length;
    }
  }
}
walk(dist);
// The console's first load: index.html and what it references directly.
const index = readFileSync(join(dist, "index.html"), "utf8");
const referenced = [...index.matchAll(/(?:src|href)="\/([^"]+)"/g)].map((m) => m[1]).filter((p) => p in sizes);
const firstLoad = sizes["index.html"] + referenced.reduce((n, p) => n + sizes[p], 0);
writeFileSync(join(dist, "sizes.json"), JSON.stringify({ firstLoadGzipBytes: firstLoad, files: sizes }, null, 2));
console.log(`dashboard first load: ${(firstLoad / 1024).toFixed(1)} KiB gzip (${referenced.length + 1} files)`);
