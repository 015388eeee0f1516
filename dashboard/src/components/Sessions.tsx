// The signed-in user's open sessions (address, user agent, when), each with "Revoke", and
// "Sign out other sessions". Lists come from the read model, so a fresh sign-in may take a
// moment to appear.
import { useMutation, useQuery } from "urql";
import { MySessionsQuery, RevokeOtherSessionsMutation, RevokeSessionMutation } from "../operations";
import { when } from "../format";

export function Sessions() {
  const [result, reexecute] = useQuery({ query: MySessionsQuery });
  const refresh = () => reexecute({ requestPolicy: "network-only" });
  const [revoked, revokeSession] = useMutation(RevokeSessionMutation);
  const [others, revokeOthers] = useMutation(RevokeOtherSessionsMutation);
  const error = result.error ?? revoked.error ?? others.error;
  return (
    <section className="panel" aria-labelledby="sessions-title">
      <h2 id="sessions-title">Sessions</h2>
      {error && <p className="error" role="alert">{error.graphQLErrors?.[0]?.message ?? error.message}</p>}
      <button type="button" onClick={async () => { await revokeOthers({}); refresh(); }}>Sign out other sessions</button>
      <table aria-label="Sessions"><thead><tr><th scope="col">Signed in</th><th scope="col">Last used</th><th scope="col">From</th><th scope="col">Client</th><th scope="col"><span className="visually-hidden">Revoke</span></th></tr></thead>
        <tbody>{result.data?.me.sessions.map((s) => (
          <tr key={s.id}><td>{when(s.createdAt)}</td><td>{when(s.lastUsedAt)}</td><td className="mono">{s.ip ?? ""}</td><td className="small">{s.userAgent ?? ""}</td>
            <td>{s.current ? "this session" : <button type="button" onClick={async () => { await revokeSession({ id: s.id }); refresh(); }}>Revoke</button>}</td></tr>
        ))}</tbody></table>
    </section>
  );
}
