// GraphiQL from our own build (no CDN, so it works offline and under the strict CSP). It signs
// in with the dashboard's refresh cookie when there is one, so the Authorization header is
// filled in; otherwise add it in the Headers tab.
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { GraphiQL } from "graphiql";
import { createGraphiQLFetcher } from "@graphiql/toolkit";
import "graphiql/style.css";

async function token(): Promise<string | null> {
  const r = await fetch("/api/auth/refresh", { method: "POST", credentials: "same-origin", headers: { "X-XDR-Refresh-Cookie": "1" } }).catch(() => null);
  if (!r?.ok) return null;
  return (await r.json()).access_token ?? null;
}

const scheme = location.protocol === "https:" ? "wss:" : "ws:";
void token().then((accessToken) => {
  const headers: Record<string, string> = accessToken ? { Authorization: `Bearer ${accessToken}` } : {};
  const fetcher = createGraphiQLFetcher({
    url: "/graphql",
    subscriptionUrl: `${scheme}//${location.host}/graphql`,
    wsConnectionParams: headers,
    headers,
  });
  createRoot(document.getElementById("graphiql")!).render(
    <StrictMode>
      <GraphiQL fetcher={fetcher} shouldPersistHeaders={false} defaultHeaders={accessToken ? JSON.stringify(headers, null, 2) : undefined} />
    </StrictMode>,
  );
});
