// The GraphQL client: queries and mutations over fetch with the in-memory access token (one
// refresh and retry on UNAUTHENTICATED, then back to the sign-in page), subscriptions over a
// graphql-transport-ws WebSocket whose connection_init carries the token.
import { Client, cacheExchange, fetchExchange, subscriptionExchange } from "urql";
import { createClient as createWsClient } from "graphql-ws";
import { expire, freshToken, onSessionChange, refresh } from "./session";

function unauthenticated(status: number, body: any): boolean {
  return status === 401 || (Array.isArray(body?.errors) && body.errors.some((e: any) => e?.extensions?.code === "UNAUTHENTICATED"));
}

async function authorizedFetch(input: RequestInfo | URL, init?: RequestInit): Promise<Response> {
  const attempt = async (token: string | null) => {
    const headers = new Headers(init?.headers);
    if (token) headers.set("Authorization", `Bearer ${token}`);
    return fetch(input, { ...init, headers, credentials: "same-origin" });
  };
  let response = await attempt(await freshToken());
  const body = await response.clone().json().catch(() => null);
  if (!unauthenticated(response.status, body)) return response;
  if (await refresh()) {
    response = await attempt(await freshToken());
    const again = await response.clone().json().catch(() => null);
    if (!unauthenticated(response.status, again)) return response;
  }
  expire();
  return response;
}

const reconnectListeners = new Set<() => void>();

/** Called each time the live socket is connected again (after a renewal or a network
 * failure): what happened meanwhile was not pushed, so views re-read their data. */
export function onLiveReconnect(listener: () => void): () => void {
  reconnectListeners.add(listener);
  return () => reconnectListeners.delete(listener);
}

export function makeClient(): { client: Client; dispose: () => void } {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  // The server holds a subscription to the token its socket was opened with and ends it
  // (SESSION_ENDED) once that token expires, so the socket is reopened with every renewed
  // token; graphql-ws then re-subscribes whatever is active.
  let socket: WebSocket | null = null;
  let socketToken: string | null = null;
  let restarting = false;
  let connectedBefore = false;
  const ws = createWsClient({
    url: `${scheme}//${location.host}/graphql`,
    lazy: true,
    retryAttempts: 1_000,
    shouldRetry: () => true,
    // Back off after failures, but reconnect at once after our own restart.
    retryWait: async (retries) => {
      if (restarting) {
        restarting = false;
        return;
      }
      await new Promise((r) => setTimeout(r, Math.min(1_000 * 2 ** retries, 30_000) + 300 + Math.random() * 2_700));
    },
    connectionParams: async () => {
      const token = await freshToken();
      socketToken = token;
      return token ? { Authorization: `Bearer ${token}` } : {};
    },
    on: {
      opened: (opened) => {
        socket = opened as WebSocket;
      },
      connected: () => {
        if (connectedBefore) for (const l of reconnectListeners) l();
        connectedBefore = true;
      },
      closed: () => {
        socket = null;
      },
    },
  });
  const stopWatching = onSessionChange((next) => {
    if (next && socketToken && next.accessToken !== socketToken && socket?.readyState === WebSocket.OPEN) {
      restarting = true;
      socket.close(4205, "Client Restart");
    }
  });
  const client = new Client({
    url: "/graphql",
    fetch: authorizedFetch,
    requestPolicy: "cache-and-network",
    // POST only: GET /graphql is GraphiQL and the WebSocket endpoint.
    preferGetMethod: false,
    exchanges: [
      cacheExchange,
      fetchExchange,
      subscriptionExchange({
        forwardSubscription(request) {
          const input = { ...request, query: request.query || "" };
          return {
            subscribe(sink) {
              const unsubscribe = ws.subscribe(input, sink);
              return { unsubscribe };
            },
          };
        },
      }),
    ],
  });
  return {
    client,
    dispose: () => {
      stopWatching();
      void ws.dispose();
    },
  };
}
