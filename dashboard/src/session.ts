// The signed-in session. The access token lives in this module's memory only (never in
// localStorage); the refresh token is an HttpOnly cookie the server sets for
// /api/auth/refresh, so a reload restores the session and page script never sees it.

export type Role = "VIEWER" | "ANALYST" | "SOC_LEAD" | "ADMIN";

export interface Session {
  accessToken: string;
  /** Milliseconds since the epoch. */
  expiresAt: number;
  userId: string;
  orgId: string;
  role: Role;
}

/** An answer of the auth REST routes that was not a success, with the server's message. */
export class AuthApiError extends Error {
  constructor(
    readonly status: number,
    readonly detail: string,
  ) {
    super(detail);
  }
}

const COOKIE_MODE = { "X-XDR-Refresh-Cookie": "1" };
/** Refresh this long before the access token expires. */
const REFRESH_MARGIN_MS = 5 * 60 * 1000;

let current: Session | null = null;
let refreshTimer: ReturnType<typeof setTimeout> | undefined;
let refreshing: Promise<boolean> | null = null;
const listeners = new Set<(s: Session | null) => void>();

export function session(): Session | null {
  return current;
}

export function onSessionChange(listener: (s: Session | null) => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

const ROLE_NAMES: Record<string, Role> = { viewer: "VIEWER", analyst: "ANALYST", soc_lead: "SOC_LEAD", admin: "ADMIN" };

/** The claims of a JWT we were just given by our own server (not verified here: the server does). */
export function decodeAccessToken(token: string): Session {
  const payload = token.split(".")[1] ?? "";
  const json = JSON.parse(atob(payload.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(payload.length / 4) * 4, "=")));
  const role = ROLE_NAMES[String(json.role).toLowerCase()] ?? (String(json.role).toUpperCase() as Role);
  return { accessToken: token, expiresAt: Number(json.exp) * 1000, userId: json.sub, orgId: json.org, role };
}

function setSession(next: Session | null) {
  current = next;
  clearTimeout(refreshTimer);
  if (next) {
    // Timers longer than ~24 days overflow; access tokens live 8 h.
    const wait = Math.max(5_000, Math.min(next.expiresAt - Date.now() - REFRESH_MARGIN_MS, 2 ** 31 - 1));
    refreshTimer = setTimeout(() => void refresh(), wait);
  }
  for (const l of listeners) l(next);
}

async function post(path: string, body: unknown, headers: Record<string, string> = {}): Promise<any> {
  const response = await fetch(path, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", ...COOKIE_MODE, ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await response.json().catch(() => ({}));
  if (!response.ok) throw new AuthApiError(response.status, explain(response.status, json.detail));
  return json;
}

/** The server's message as it is, with what the user can do about it where that helps. */
export function explain(status: number, detail: unknown): string {
  const message = typeof detail === "string" && detail ? detail : `Request failed (HTTP ${status})`;
  if (status === 429) return `${message}. Too many sign-in attempts from this address: wait a minute, then try again.`;
  if (status === 403 && /lock/i.test(message))
    return `${message}. After 5 failed sign-ins an account is locked for 15 minutes; an admin can unlock it sooner.`;
  return message;
}

/** A right password of an account with a second factor: the code comes next. */
export interface SecondStep {
  mfaToken: string;
}

export async function login(email: string, password: string): Promise<Session | SecondStep> {
  const answer = await post("/api/auth/login", { email, password });
  if (answer.mfa_required) return { mfaToken: String(answer.mfa_token) };
  const s = decodeAccessToken(answer.access_token);
  setSession(s);
  return s;
}

/** The second step of a sign-in: a code from the authenticator app, or a recovery code. */
export async function loginSecondFactor(mfaToken: string, code: string): Promise<Session> {
  const answer = await post("/api/auth/login/mfa", { mfa_token: mfaToken, code });
  const s = decodeAccessToken(answer.access_token);
  setSession(s);
  return s;
}

export async function register(input: {
  organizationName: string;
  email: string;
  password: string;
  fullName: string;
}): Promise<Session> {
  const answer = await post("/api/auth/register", {
    organization_name: input.organizationName,
    admin_email: input.email,
    admin_password: input.password,
    admin_name: input.fullName,
  });
  const s = decodeAccessToken(answer.access_token);
  setSession(s);
  return s;
}

export async function acceptInvite(token: string, password: string): Promise<void> {
  await post("/api/auth/accept-invite", { token, password });
}

/** Ask for a reset link; the server answers the same for every address. */
export async function forgotPassword(email: string): Promise<string> {
  const answer = await post("/api/auth/forgot-password", { email });
  return typeof answer.detail === "string" ? answer.detail : "If the address belongs to an account, a reset link is on its way.";
}

/** Set a new password with a mailed link's token (every session of the user ends). */
export async function resetPassword(token: string, password: string): Promise<void> {
  await post("/api/auth/reset-password", { token, password });
}

/** A new access token from the refresh cookie; false (and signed out) when the cookie is gone or refused. */
export function refresh(): Promise<boolean> {
  refreshing ??= post("/api/auth/refresh", undefined)
    .then((answer) => {
      setSession(decodeAccessToken(answer.access_token));
      return true;
    })
    .catch(() => {
      setSession(null);
      return false;
    })
    .finally(() => {
      refreshing = null;
    });
  return refreshing;
}

/** A token that is good for at least a little while (refreshing first when it is not). */
export async function freshToken(): Promise<string | null> {
  if (current && current.expiresAt - Date.now() > 30_000) return current.accessToken;
  return (await refresh()) ? (current?.accessToken ?? null) : null;
}

/** Revoke the session on the server and clear the cookie; the page forgets the token either way. */
export async function logout(): Promise<void> {
  const token = await freshToken().catch(() => null);
  try {
    if (token) await post("/api/auth/logout", undefined, { Authorization: `Bearer ${token}` });
  } finally {
    setSession(null);
  }
}

/** Called when the server refuses our token even after one refresh. */
export function expire() {
  setSession(null);
}

const ORDER: Role[] = ["VIEWER", "ANALYST", "SOC_LEAD", "ADMIN"];
/** Whether `role` holds at least `least` (viewer < analyst < soc_lead < admin). */
export function atLeast(role: Role | undefined, least: Role): boolean {
  return role !== undefined && ORDER.indexOf(role) >= ORDER.indexOf(least);
}

/** The password policy of the server, checked as the user types (the server still decides). */
export function passwordRules(password: string): { label: string; ok: boolean }[] {
  return [
    { label: "At least 12 characters", ok: password.length >= 12 },
    { label: "An upper-case letter", ok: /[A-Z]/.test(password) },
    { label: "A lower-case letter", ok: /[a-z]/.test(password) },
    { label: "A digit", ok: /\d/.test(password) },
    { label: "A special character", ok: /[^A-Za-z0-9]/.test(password) },
  ];
}
