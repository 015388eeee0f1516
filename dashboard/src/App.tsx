import { lazy, Suspense, useEffect, useMemo, useState, type ReactNode } from "react";
import { Navigate, NavLink, Route, Routes, useLocation, useNavigate } from "react-router";
import { Provider, useQuery } from "urql";
import { makeClient } from "./client";
import { MeQuery } from "./operations";
import { atLeast, logout, onSessionChange, refresh, session, type Session } from "./session";
import { SessionContext } from "./useSession";
import { AcceptInvitePage, ForgotPasswordPage, LoginPage, RegisterPage, ResetPasswordPage } from "./pages/Auth";
import { QueuePage } from "./pages/Queue";
import { IncidentPage } from "./pages/Incident";

// Pages an analyst opens less often load on demand and keep the first load small.
const OverviewPage = lazy(() => import("./pages/Overview"));
const EventsPage = lazy(() => import("./pages/Events"));
const ResponsePage = lazy(() => import("./pages/Response"));
const AdminPage = lazy(() => import("./pages/Admin"));

export function App() {
  const [current, setCurrent] = useState<Session | null>(session());
  // Until the refresh cookie has been tried, we do not know whether the user is signed in.
  const [restoring, setRestoring] = useState(current === null);
  useEffect(() => onSessionChange(setCurrent), []);
  useEffect(() => {
    if (!restoring) return;
    void refresh().finally(() => setRestoring(false));
  }, [restoring]);
  // A new client (and cache, and WebSocket) per signed-in user: nothing carries across sessions.
  const signedInAs = current ? `${current.orgId}/${current.userId}` : null;
  const { client, dispose } = useMemo(() => makeClient(), [signedInAs]);
  useEffect(() => dispose, [dispose]);

  if (restoring) return <p className="loading" role="status">Loading…</p>;
  return (
    <SessionContext.Provider value={current}>
      <Provider value={client}>
        <Routes>
          <Route path="/login" element={<LoginPage />} />
          <Route path="/register" element={<RegisterPage />} />
          <Route path="/accept-invite" element={<AcceptInvitePage />} />
          <Route path="/forgot-password" element={<ForgotPasswordPage />} />
          <Route path="/reset-password" element={<ResetPasswordPage />} />
          <Route path="*" element={<RequireSession session={current}><Shell /></RequireSession>} />
        </Routes>
      </Provider>
    </SessionContext.Provider>
  );
}

function RequireSession({ session, children }: { session: Session | null; children: ReactNode }) {
  const location = useLocation();
  if (!session) {
    const next = location.pathname + location.search;
    return <Navigate to={`/login${next && next !== "/" ? `?next=${encodeURIComponent(next)}` : ""}`} replace />;
  }
  return children;
}

function Shell() {
  const navigate = useNavigate();
  const s = session();
  const [me] = useQuery({ query: MeQuery });
  const [signingOut, setSigningOut] = useState(false);
  const signOut = async () => {
    setSigningOut(true);
    await logout().catch(() => undefined);
    navigate("/login", { replace: true });
  };
  return (
    <div className="shell">
      <a className="skip" href="#main">Skip to content</a>
      <header className="topbar">
        <span className="brand" aria-hidden="true">Mini-XDR</span>
        <nav aria-label="Main">
          <NavLink to="/incidents">Incidents</NavLink>
          <NavLink to="/overview">Overview</NavLink>
          <NavLink to="/events">Events</NavLink>
          <NavLink to="/response">Response</NavLink>
          {atLeast(s?.role, "ADMIN") && <NavLink to="/admin">Administration</NavLink>}
          <a href="/graphql">GraphiQL</a>
        </nav>
        <div className="who">
          {me.data && (
            <span>
              {me.data.me.user.fullName} · {me.data.me.organization.name} · <span className="role">{me.data.me.user.role.toLowerCase()}</span>
            </span>
          )}
          <button type="button" onClick={signOut} disabled={signingOut}>Sign out</button>
        </div>
      </header>
      <main id="main">
        <Suspense fallback={<p role="status">Loading…</p>}>
          <Routes>
            <Route path="/" element={<Navigate to="/incidents" replace />} />
            <Route path="/incidents" element={<QueuePage />} />
            <Route path="/incidents/:id" element={<IncidentPage />} />
            <Route path="/overview" element={<OverviewPage />} />
            <Route path="/events" element={<EventsPage />} />
            <Route path="/response" element={<ResponsePage />} />
            <Route path="/admin" element={<AdminPage />} />
            <Route path="*" element={<p>Nothing here. <NavLink to="/incidents">Back to the incidents</NavLink>.</p>} />
          </Routes>
        </Suspense>
      </main>
    </div>
  );
}
