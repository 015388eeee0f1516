// Administration (admin): users (invite, lock/unlock, role, deactivate/reactivate), the
// admin's own sessions, ingest keys (create — shown once
// with a producer command line — and revoke), and the audit log.
import { useState, type FormEvent } from "react";
import { useMutation, useQuery } from "urql";
import type { Role } from "../gql/graphql";
import {
  AdminQuery,
  ChangeUserRoleMutation,
  CreateIngestKeyMutation,
  DeactivateUserMutation,
  InviteUserMutation,
  LockUserMutation,
  ReactivateUserMutation,
  RevokeIngestKeyMutation,
  UnlockUserMutation,
} from "../operations";
import { label, when } from "../format";
import { atLeast } from "../session";
import { useSession } from "../useSession";
import { ShownOnce } from "../components/ShownOnce";
import { Sessions } from "../components/Sessions";

const ROLES: Role[] = ["VIEWER", "ANALYST", "SOC_LEAD", "ADMIN"] as Role[];

function firstError(...errors: ({ graphQLErrors?: { message: string }[]; message: string } | undefined)[]): string | null {
  const e = errors.find(Boolean);
  return e ? (e.graphQLErrors?.[0]?.message ?? e.message) : null;
}

export default function AdminPage() {
  const session = useSession();
  const [auditAfter, setAuditAfter] = useState<string | null>(null);
  const isAdmin = atLeast(session?.role, "ADMIN");
  const [result, reexecute] = useQuery({ query: AdminQuery, variables: { auditAfter }, pause: !isAdmin });
  const refresh = () => reexecute({ requestPolicy: "network-only" });
  const [invite, inviteUser] = useMutation(InviteUserMutation);
  const [lock, lockUser] = useMutation(LockUserMutation);
  const [unlock, unlockUser] = useMutation(UnlockUserMutation);
  const [roleChange, changeRole] = useMutation(ChangeUserRoleMutation);
  const [deactivation, deactivateUser] = useMutation(DeactivateUserMutation);
  const [reactivation, reactivateUser] = useMutation(ReactivateUserMutation);
  const [created, createKey] = useMutation(CreateIngestKeyMutation);
  const [revoke, revokeKey] = useMutation(RevokeIngestKeyMutation);
  const [keyName, setKeyName] = useState("");
  if (!isAdmin) return <section><h1>Administration</h1><p>Only admins administer the organization.</p></section>;
  const data = result.data;
  const error = firstError(result.error, invite.error, lock.error, unlock.error, roleChange.error, deactivation.error, reactivation.error, created.error, revoke.error);
  const submitInvite = async (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const f = new FormData(e.currentTarget);
    const r = await inviteUser({ email: String(f.get("email")), fullName: String(f.get("fullName")), role: f.get("role") as Role });
    if (!r.error) refresh();
  };
  const invitation = invite.data?.inviteUser;
  return (
    <section aria-labelledby="admin-title">
      <h1 id="admin-title">Administration</h1>
      {error && <p className="error" role="alert">{error}</p>}
      <section className="panel" aria-labelledby="users-title">
        <h2 id="users-title">Users</h2>
        <form className="row" onSubmit={submitInvite} aria-label="Invite a user">
          <label>Email <input name="email" type="email" required /></label>
          <label>Full name <input name="fullName" required /></label>
          <label>Role
            <select name="role" defaultValue="ANALYST">{["VIEWER", "ANALYST", "SOC_LEAD", "ADMIN"].map((r) => <option key={r} value={r}>{label(r)}</option>)}</select>
          </label>
          <button type="submit" disabled={invite.fetching}>Invite</button>
        </form>
        {invitation && (
          <ShownOnce secret={invitation.invitationToken} command={`${location.origin}/accept-invite?token=${encodeURIComponent(invitation.invitationToken)}`} />
        )}
        <table aria-label="Users"><thead><tr><th scope="col">Name</th><th scope="col">Email</th><th scope="col">Role</th><th scope="col">Active</th><th scope="col">Last sign-in</th><th scope="col"><span className="visually-hidden">Lock</span></th></tr></thead>
          <tbody>{data?.users.nodes.map((u) => (
            <tr key={u.id}><td>{u.fullName}</td><td>{u.email}</td><td>{u.id === session?.userId ? label(u.role) : (
                <select aria-label={`Role of ${u.email}`} value={u.role} onChange={async (e) => { await changeRole({ id: u.id, role: e.target.value as Role }); refresh(); }}>
                  {ROLES.map((r) => <option key={r} value={r}>{label(r)}</option>)}
                </select>)}</td><td>{u.isActive ? "yes" : "no"}</td><td>{when(u.lastLogin)}</td>
              <td>{u.id !== session?.userId && (<>
                <button type="button" onClick={async () => { await lockUser({ id: u.id }); refresh(); }}>Lock</button>{" "}
                <button type="button" onClick={async () => { await unlockUser({ id: u.id }); refresh(); }}>Unlock</button>{" "}
                {u.isActive
                  ? <button type="button" onClick={async () => { await deactivateUser({ id: u.id }); refresh(); }}>Deactivate</button>
                  : <button type="button" onClick={async () => { await reactivateUser({ id: u.id }); refresh(); }}>Reactivate</button>}
              </>)}</td></tr>
          ))}</tbody></table>
      </section>

      <Sessions />

      <section className="panel" aria-labelledby="keys-title">
        <h2 id="keys-title">Ingest keys</h2>
        <form className="row" onSubmit={async (e) => { e.preventDefault(); await createKey({ name: keyName }); setKeyName(""); refresh(); }}>
          <label>Key name <input value={keyName} required onChange={(e) => setKeyName(e.target.value)} /></label>
          <button type="submit">Create ingest key</button>
        </form>
        {created.data && (
          <ShownOnce
            secret={created.data.createIngestKey.key}
            command={`curl -fsS -H 'Authorization: Bearer ${created.data.createIngestKey.key}' --data-binary @cowrie.json ${location.origin}/ingest/cowrie\n# or through NATS: mini-xdr ingest --key ${created.data.createIngestKey.key} --source cowrie cowrie.json`}
          />
        )}
        <table aria-label="Ingest keys"><thead><tr><th scope="col">Name</th><th scope="col">Prefix</th><th scope="col">Created</th><th scope="col">Revoked</th><th scope="col"><span className="visually-hidden">Revoke</span></th></tr></thead>
          <tbody>{data?.ingestKeys.map((k) => (
            <tr key={k.id}><td>{k.name}</td><td className="mono">{k.prefix}…</td><td>{when(k.createdAt)}</td><td>{k.revokedAt ? when(k.revokedAt) : "—"}</td>
              <td>{!k.revokedAt && <button type="button" onClick={async () => { await revokeKey({ id: k.id }); refresh(); }}>Revoke</button>}</td></tr>
          ))}</tbody></table>
      </section>

      <section className="panel" aria-labelledby="audit-title">
        <h2 id="audit-title">Audit log</h2>
        <table aria-label="Audit log"><thead><tr><th scope="col">When</th><th scope="col">Event</th><th scope="col">Actor</th><th scope="col">From</th><th scope="col">Details</th></tr></thead>
          <tbody>{data?.auditLog.nodes.map((a) => (
            <tr key={a.orgSeq}><td>{when(a.recordedAt)}</td><td>{a.eventType}</td><td>{a.actor ?? "system"}</td><td className="mono">{a.requestIp ?? ""}</td><td className="wrap mono small">{JSON.stringify(a.details)}</td></tr>
          ))}</tbody></table>
        <nav className="pager" aria-label="Audit pages">
          {auditAfter && <button type="button" onClick={() => setAuditAfter(null)}>Newest</button>}
          {data?.auditLog.pageInfo.hasNextPage && <button type="button" onClick={() => setAuditAfter(data.auditLog.pageInfo.endCursor ?? null)}>Older</button>}
        </nav>
      </section>
    </section>
  );
}
