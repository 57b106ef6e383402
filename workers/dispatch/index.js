// The dispatch Worker: every request entering the SaaS zone (a `*/*` route) lands here, and the
// routing table in Workers KV decides, by hostname, what the visitor gets (docs/routing.md).
//
// Bindings:
//   ROUTES        KV namespace: the routing table, one key per hostname (lower case, no dot
//                 at the end), written by the reconciler through the KV REST API.
//   PAGES_ORIGIN  optional text: where a project's site is fetched from, with "{project}" in
//                 place of the project name. Default "https://{project}.pages.dev"; the sandbox
//                 points it at the Pages simulator.
//
// Routing table values (JSON):
//   {"action": "serve", "project": "acme-home"}    the site of that Pages project
//   {"action": "suspend", "tenant": "acme"}        the suspension page, status 503
//   (no entry)                                     an honest not-found page, status 404
// Reserved keys (a hostname can never start with "_"): "__page__/suspended" and
// "__page__/not-found" hold HTML that replaces the built-in pages.

const DEFAULT_ORIGIN = "https://{project}.pages.dev";
const PROJECT_NAME = /^[a-z0-9][a-z0-9-]*$/;
const SUSPENDED_KEY = "__page__/suspended";
const NOT_FOUND_KEY = "__page__/not-found";

const BUILT_IN_SUSPENDED = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Site suspended</title>
<meta name="robots" content="noindex"></head>
<body><h1>This site is temporarily unavailable</h1>
<p>The owner's account is suspended. If you own this site, please contact support.</p>
</body></html>
`;

const BUILT_IN_NOT_FOUND = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Site not found</title>
<meta name="robots" content="noindex"></head>
<body><h1>There is no site at this address</h1>
<p>This hostname is not connected to any site.</p>
</body></html>
`;

function page(html, status, route) {
  return new Response(html, {
    status,
    headers: {
      "content-type": "text/html; charset=utf-8",
      "cache-control": "no-store",
      "x-sitebuilder-route": route,
    },
  });
}

async function reservedPage(env, key, fallback) {
  const stored = await env.ROUTES.get(key);
  return stored === null ? fallback : stored;
}

function hostnameOf(request) {
  return new URL(request.url).hostname.toLowerCase().replace(/\.$/, "");
}

function readEntry(raw) {
  if (raw === null) return { action: "none" };
  try {
    const entry = JSON.parse(raw);
    if (entry && typeof entry === "object" && typeof entry.action === "string") return entry;
  } catch (_) {
    // falls through to the unreadable answer
  }
  return { action: "unreadable" };
}

async function serveSite(request, env, project) {
  const url = new URL(request.url);
  const base = (env.PAGES_ORIGIN || DEFAULT_ORIGIN).replace("{project}", project);
  const upstream = new URL(base.replace(/\/$/, "") + url.pathname + url.search);
  const headers = new Headers(request.headers);
  headers.delete("host");
  const answer = await fetch(upstream.toString(), {
    method: request.method,
    headers,
    body: request.method === "GET" || request.method === "HEAD" ? undefined : request.body,
    redirect: "manual",
  });
  const out = new Response(answer.body, answer);
  out.headers.set("x-sitebuilder-route", `serve:${project}`);
  return out;
}

export default {
  async fetch(request, env) {
    const hostname = hostnameOf(request);
    const entry = readEntry(await env.ROUTES.get(hostname));
    if (entry.action === "serve" && typeof entry.project === "string"
        && PROJECT_NAME.test(entry.project)) {
      return serveSite(request, env, entry.project);
    }
    if (entry.action === "suspend") {
      return page(await reservedPage(env, SUSPENDED_KEY, BUILT_IN_SUSPENDED), 503, "suspend");
    }
    if (entry.action === "none") {
      return page(await reservedPage(env, NOT_FOUND_KEY, BUILT_IN_NOT_FOUND), 404, "none");
    }
    return new Response(`The routing entry for ${hostname} is unreadable.\n`, {
      status: 502,
      headers: { "content-type": "text/plain; charset=utf-8", "x-sitebuilder-route": "invalid" },
    });
  },
};
