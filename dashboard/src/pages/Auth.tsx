// Sign in, create an organization, accept an invitation. The server's messages are shown as
// they are (with what lockout and rate limiting mean); the password policy is shown as the
// user types.
import { useState, type FormEvent, type ReactNode } from "react";
import { Link, useNavigate, useSearchParams } from "react-router";
import { acceptInvite, AuthApiError, forgotPassword, login, loginSecondFactor, passwordRules, register, resetPassword } from "../session";

function AuthFrame({ title, children }: { title: string; children: ReactNode }) {
  return (
    <main className="auth" id="main">
      <div className="auth-card">
        <p className="brand">Mini-XDR</p>
        <h1>{title}</h1>
        {children}
      </div>
    </main>
  );
}

export function PasswordRules({ password }: { password: string }) {
  const rules = passwordRules(password);
  return (
    <ul className="rules" aria-label="Requirements" id="password-rules">
      {rules.map((r) => (
        <li key={r.label} className={r.ok ? "ok" : "todo"}>
          <span aria-hidden="true">{r.ok ? "✓" : "•"}</span> {r.label}
          <span className="visually-hidden">{r.ok ? " (met)" : " (not yet)"}</span>
        </li>
      ))}
    </ul>
  );
}

function ErrorMessage({ error }: { error: string | null }) {
  return error ? <p className="error" role="alert">{error}</p> : null;
}

function message(e: unknown): string {
  if (e instanceof AuthApiError) return e.detail;
  return "The server could not be reached. Check your connection and try again.";
}

/** Only paths of this app: a `next` parameter can never send the user elsewhere. */
function safeNext(next: string | null): string {
  return next && next.startsWith("/") && !next.startsWith("//") ? next : "/incidents";
}

export function LoginPage() {
  const navigate = useNavigate();
  const [params] = useSearchParams();
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [code, setCode] = useState("");
  const [mfaToken, setMfaToken] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      if (mfaToken) {
        await loginSecondFactor(mfaToken, code);
      } else {
        const result = await login(email, password);
        if ("mfaToken" in result) {
          setMfaToken(result.mfaToken);
          return;
        }
      }
      navigate(safeNext(params.get("next")), { replace: true });
    } catch (err) {
      // A burned or expired second step needs the password again.
      if (mfaToken && err instanceof AuthApiError && err.status === 401 && /password again/.test(err.message)) {
        setMfaToken(null);
        setCode("");
      }
      setError(message(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <AuthFrame title="Sign in">
      <form onSubmit={submit}>
        <label htmlFor="email">Email</label>
        <input id="email" type="email" autoComplete="username" required value={email} onChange={(e) => setEmail(e.target.value)} />
        <label htmlFor="password">Password</label>
        <input id="password" type="password" autoComplete="current-password" required value={password} onChange={(e) => setPassword(e.target.value)} />
        {mfaToken && (<>
          <label htmlFor="code">Authentication code</label>
          <input id="code" inputMode="numeric" autoComplete="one-time-code" required autoFocus value={code} onChange={(e) => setCode(e.target.value)} />
        </>)}
        <ErrorMessage error={error} />
        <button type="submit" className="primary" disabled={busy}>Sign in</button>
      </form>
      <p className="alt">
        <Link to="/forgot-password">Forgot password?</Link>
      </p>
      <p className="alt">
        New here? <Link to="/register">Create an organization</Link>
      </p>
    </AuthFrame>
  );
}

export function RegisterPage() {
  const navigate = useNavigate();
  const [organizationName, setOrganizationName] = useState("");
  const [fullName, setFullName] = useState("");
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await register({ organizationName, email, password, fullName });
      navigate("/incidents", { replace: true });
    } catch (err) {
      setError(message(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <AuthFrame title="Create an organization">
      <form onSubmit={submit}>
        <label htmlFor="org">Organization name</label>
        <input id="org" required value={organizationName} onChange={(e) => setOrganizationName(e.target.value)} />
        <label htmlFor="name">Full name</label>
        <input id="name" autoComplete="name" required value={fullName} onChange={(e) => setFullName(e.target.value)} />
        <label htmlFor="email">Email</label>
        <input id="email" type="email" autoComplete="username" required value={email} onChange={(e) => setEmail(e.target.value)} />
        <label htmlFor="password">Password</label>
        <input id="password" type="password" autoComplete="new-password" required aria-describedby="password-rules" value={password} onChange={(e) => setPassword(e.target.value)} />
        <PasswordRules password={password} />
        <ErrorMessage error={error} />
        <button type="submit" className="primary" disabled={busy}>Create organization</button>
      </form>
      <p className="alt">
        Already have an account? <Link to="/login">Sign in</Link>
      </p>
    </AuthFrame>
  );
}

export function AcceptInvitePage() {
  const [params] = useSearchParams();
  const [token, setToken] = useState(params.get("token") ?? "");
  const [password, setPassword] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [done, setDone] = useState(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    try {
      await acceptInvite(token, password);
      setDone(true);
    } catch (err) {
      setError(message(err));
    }
  };
  if (done)
    return (
      <AuthFrame title="Invitation accepted">
        <p>Your account is ready. <Link to="/login">Sign in</Link> with your e-mail address and the password you chose.</p>
      </AuthFrame>
    );
  return (
    <AuthFrame title="Accept an invitation">
      <form onSubmit={submit}>
        <label htmlFor="token">Invitation token</label>
        <input id="token" required value={token} onChange={(e) => setToken(e.target.value)} />
        <label htmlFor="password">Password</label>
        <input id="password" type="password" autoComplete="new-password" required aria-describedby="password-rules" value={password} onChange={(e) => setPassword(e.target.value)} />
        <PasswordRules password={password} />
        <ErrorMessage error={error} />
        <button type="submit" className="primary">Set password</button>
      </form>
      <p className="alt"><Link to="/login">Sign in</Link></p>
    </AuthFrame>
  );
}

export function ForgotPasswordPage() {
  const [email, setEmail] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [sent, setSent] = useState<string | null>(null);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    try {
      setSent(await forgotPassword(email));
    } catch (err) {
      setError(message(err));
    }
  };
  return (
    <AuthFrame title="Reset your password">
      {sent ? (
        <p role="status">{sent} The link works once, for 30 minutes.</p>
      ) : (
        <form onSubmit={submit}>
          <label htmlFor="email">Email</label>
          <input id="email" type="email" autoComplete="username" required value={email} onChange={(e) => setEmail(e.target.value)} />
          <ErrorMessage error={error} />
          <button type="submit" className="primary">Send reset link</button>
        </form>
      )}
      <p className="alt"><Link to="/login">Sign in</Link></p>
    </AuthFrame>
  );
}

export function ResetPasswordPage() {
  const [params] = useSearchParams();
  const token = params.get("token") ?? "";
  const [password, setPassword] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [done, setDone] = useState(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    try {
      await resetPassword(token, password);
      setDone(true);
    } catch (err) {
      setError(message(err));
    }
  };
  if (done)
    return (
      <AuthFrame title="Password changed">
        <p>Every session of your account has ended. <Link to="/login">Sign in</Link> with the new password.</p>
      </AuthFrame>
    );
  return (
    <AuthFrame title="Choose a new password">
      <form onSubmit={submit}>
        <label htmlFor="password">New password</label>
        <input id="password" type="password" autoComplete="new-password" required aria-describedby="password-rules" value={password} onChange={(e) => setPassword(e.target.value)} />
        <PasswordRules password={password} />
        <ErrorMessage error={error} />
        <button type="submit" className="primary" disabled={!token}>Set new password</button>
      </form>
      <p className="alt"><Link to="/forgot-password">Ask for a new link</Link></p>
    </AuthFrame>
  );
}
