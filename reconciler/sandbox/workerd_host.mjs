// The sandbox's edge: visitor requests run the Worker the zone routes to, in workerd (Miniflare).
//
// Started by reconciler/sandbox/workerd.py:
//   node workerd_host.mjs --sim http://127.0.0.1:<cf port> [--port 0] [--pages-origin T]
// It listens on 127.0.0.1 and prints "LISTENING <port>" once ready. For every request it asks
// the Cloudflare simulator's edge (GET /__sandbox/edge?host=&path=) what the zone does with it:
//   - the hostname is not served by the zone (not an active custom hostname): 530, as
//     Cloudflare's error 1001 would be, header x-sandbox-edge: not-served;
//   - no Worker route matches (the fallback origin is originless): 522, x-sandbox-edge: no-worker;
//   - otherwise it runs the script exactly as uploaded through the Workers API (its modules,
//     its plain_text/json/secret_text bindings, its KV bindings), reloading workerd when the
//     script's etag moves, and copies each bound KV namespace from the simulator whenever its
//     version moved, before dispatching. The KV binding therefore holds exactly what was
//     written through the KV REST API, and a write is visible to the next request (the real
//     edge may take up to 60 s; docs/routing.md).
// --pages-origin overrides the script's PAGES_ORIGIN binding (the Pages simulator's sites).
// Requests are handled one at a time, so a reload or a KV copy never races a dispatch.

import http from "node:http";
import { Miniflare } from "miniflare";

function parseArgs(argv) {
  const args = { sim: "", port: 0, pagesOrigin: "" };
  for (let i = 0; i < argv.length; i += 2) {
    const [name, value] = [argv[i], argv[i + 1]];
    if (name === "--sim") args.sim = value.replace(/\/$/, "");
    else if (name === "--port") args.port = Number(value);
    else if (name === "--pages-origin") args.pagesOrigin = value;
    else throw new Error(`unknown argument ${name}`);
  }
  if (!args.sim) throw new Error("--sim <simulator base url> is required");
  return args;
}

const args = parseArgs(process.argv.slice(2));
let mf = null;
let loadedEtag = null;
let kvVersions = new Map(); // namespace id -> version copied into workerd
let kvKeys = new Map(); // namespace id -> Set of keys copied

async function getJson(path) {
  const answer = await fetch(args.sim + path);
  if (!answer.ok) throw new Error(`simulator ${path}: HTTP ${answer.status}`);
  return answer.json();
}

function moduleType(name, contentType) {
  if (contentType.includes("wasm")) return "CompiledWasm";
  if (name.endsWith(".cjs") || contentType === "application/javascript") return "CommonJS";
  if (contentType.startsWith("text/plain")) return "Text";
  if (contentType.includes("octet-stream")) return "Data";
  return "ESModule";
}

function options(script) {
  const main = script.main_module;
  const names = [main, ...Object.keys(script.modules).filter((n) => n !== main)];
  const modules = names.map((name) => ({
    type: name === main ? "ESModule" : moduleType(name, script.modules[name].type),
    path: name,
    contents: script.modules[name].content,
  }));
  const bindings = {};
  const kvNamespaces = {};
  for (const binding of script.bindings) {
    if (binding.type === "kv_namespace") kvNamespaces[binding.name] = binding.namespace_id;
    else if (binding.type === "plain_text" || binding.type === "secret_text") {
      bindings[binding.name] = binding.text;
    } else if (binding.type === "json") bindings[binding.name] = binding.json;
  }
  if (args.pagesOrigin) bindings.PAGES_ORIGIN = args.pagesOrigin;
  return {
    modules,
    bindings,
    kvNamespaces,
    compatibilityDate: script.compatibility_date,
    compatibilityFlags: script.compatibility_flags,
  };
}

async function load(script) {
  if (loadedEtag === script.etag && mf !== null) return;
  const opts = options(script);
  if (mf === null) {
    mf = new Miniflare(opts);
    await mf.ready;
  } else {
    await mf.setOptions(opts);
  }
  loadedEtag = script.etag;
  kvVersions = new Map();
  kvKeys = new Map();
}

async function syncKv(binding, id, version) {
  if (kvVersions.get(id) === version) return;
  const dump = await getJson(`/__sandbox/kv/${encodeURIComponent(id)}`);
  const kv = await mf.getKVNamespace(binding);
  const wanted = dump.entries;
  for (const key of kvKeys.get(id) || []) {
    if (!(key in wanted)) await kv.delete(key);
  }
  for (const [key, entry] of Object.entries(wanted)) {
    const extra = entry.metadata === null ? {} : { metadata: entry.metadata };
    await kv.put(key, entry.value, extra);
  }
  kvKeys.set(id, new Set(Object.keys(wanted)));
  kvVersions.set(id, dump.version);
}

function plain(res, status, edge, text) {
  res.writeHead(status, { "content-type": "text/plain; charset=utf-8", "x-sandbox-edge": edge });
  res.end(text + "\n");
}

async function readBody(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return Buffer.concat(chunks);
}

async function handle(req, res) {
  const host = (req.headers.host || "").replace(/:\d+$/, "").toLowerCase();
  const url = new URL(req.url, `http://${host || "localhost"}`);
  const query = new URLSearchParams({ host, path: url.pathname });
  const edge = await getJson(`/__sandbox/edge?${query}`);
  if (!edge.served) return plain(res, 530, "not-served", `error 1001: ${edge.reason}`);
  if (edge.script === null) return plain(res, 522, "no-worker", edge.reason);
  await load(edge.script);
  for (const [binding, info] of Object.entries(edge.kv)) {
    await syncKv(binding, info.id, info.version);
  }
  const body = req.method === "GET" || req.method === "HEAD" ? undefined : await readBody(req);
  const headers = Object.entries(req.headers).filter(([, v]) => typeof v === "string");
  const answer = await mf.dispatchFetch(`http://${host}${url.pathname}${url.search}`, {
    method: req.method,
    headers,
    body,
    redirect: "manual",
  });
  const out = {};
  answer.headers.forEach((value, name) => {
    out[name] = value;
  });
  out["x-sandbox-edge"] = "worker";
  res.writeHead(answer.status, out);
  res.end(Buffer.from(await answer.arrayBuffer()));
}

let queue = Promise.resolve();
const server = http.createServer((req, res) => {
  queue = queue
    .then(() => handle(req, res))
    .catch((error) => {
      if (!res.headersSent) plain(res, 500, "host-error", `sandbox edge error: ${error.message}`);
      else res.end();
    });
});

async function shutdown() {
  server.close();
  if (mf !== null) await mf.dispose();
  process.exit(0);
}
process.on("SIGTERM", shutdown);
process.on("SIGINT", shutdown);

server.listen(args.port, "127.0.0.1", () => {
  process.stdout.write(`LISTENING ${server.address().port}\n`);
});
