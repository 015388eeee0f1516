// Response: the approval queue, actions and their state, active blocks, containment policies
// (in evaluation order), the safety rails and auto-containment switch, and agent keys.
import { useState, type FormEvent } from "react";
import { Link } from "react-router";
import { useMutation, useQuery } from "urql";
import type { ActionKind, ContainmentPolicyInput, IncidentCategory, PolicyMode, ResponseQuery as ResponseData, Severity } from "../gql/graphql";
import {
  ApproveActionMutation,
  CreateAgentKeyMutation,
  CreatePolicyMutation,
  DeletePolicyMutation,
  RejectActionMutation,
  ResponseQuery,
  RevokeAgentKeyMutation,
  SetAutoContainmentMutation,
  UpdatePolicyMutation,
  UpdateSettingsMutation,
} from "../operations";
import { label, when } from "../format";
import { atLeast } from "../session";
import { useSession } from "../useSession";
import { ShownOnce } from "../components/ShownOnce";

type Policy = ResponseData["containmentPolicies"][number];

function firstError(...errors: ({ graphQLErrors?: { message: string }[]; message: string } | undefined)[]): string | null {
  const e = errors.find(Boolean);
  return e ? (e.graphQLErrors?.[0]?.message ?? e.message) : null;
}

const list = (s: string) => s.split(",").map((x) => x.trim()).filter(Boolean);

function PolicyForm({ policy, onDone }: { policy?: Policy; onDone: () => void }) {
  const [create, createPolicy] = useMutation(CreatePolicyMutation);
  const [update, updatePolicy] = useMutation(UpdatePolicyMutation);
  const submit = async (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const f = new FormData(e.currentTarget);
    const duration = String(f.get("duration") ?? "");
    const input: ContainmentPolicyInput = {
      name: String(f.get("name")),
      priority: Number(f.get("priority")),
      enabled: f.get("enabled") === "on",
      mode: f.get("mode") as PolicyMode,
      conditions: {
        minSeverity: (f.get("minSeverity") || null) as Severity | null,
        categories: list(String(f.get("categories") ?? "")).map((c) => c.toUpperCase()) as IncidentCategory[],
        minRisk: f.get("minRisk") ? Number(f.get("minRisk")) : null,
        techniques: list(String(f.get("techniques") ?? "")),
        sourceIn: list(String(f.get("sourceIn") ?? "")),
        sourceNotIn: list(String(f.get("sourceNotIn") ?? "")),
      },
      action: { kind: f.get("kind") as ActionKind, durationSeconds: duration ? Number(duration) : null },
    };
    const r = policy ? await updatePolicy({ id: policy.id, input }) : await createPolicy({ input });
    if (!r.error) onDone();
  };
  const c = policy?.conditions;
  return (
    <form className="policy-form" onSubmit={submit} aria-label={policy ? `Edit policy ${policy.name}` : "New policy"}>
      <label>Name <input name="name" required defaultValue={policy?.name} /></label>
      <label>Priority <input name="priority" type="number" required defaultValue={policy?.priority ?? 100} /></label>
      <label>Mode
        <select name="mode" defaultValue={policy?.mode ?? "APPROVAL"}><option value="APPROVAL">approval</option><option value="AUTO">auto</option></select>
      </label>
      <label>Action
        <select name="kind" defaultValue={policy?.action.kind ?? "BLOCK_IP"}><option value="BLOCK_IP">block ip</option><option value="NOTIFY">notify</option></select>
      </label>
      <label>Block seconds <input name="duration" type="number" min={1} defaultValue={policy?.action.durationSeconds ?? 3600} /></label>
      <label>Minimum severity
        <select name="minSeverity" defaultValue={c?.minSeverity ?? ""}><option value="">any</option>{["LOW", "MEDIUM", "HIGH", "CRITICAL"].map((s) => <option key={s} value={s}>{label(s)}</option>)}</select>
      </label>
      <label>Categories <input name="categories" placeholder="BRUTE_FORCE, COMPROMISE" defaultValue={c?.categories.join(", ")} /></label>
      <label>Minimum risk <input name="minRisk" type="number" step="0.01" min={0} max={1} defaultValue={c?.minRisk ?? ""} /></label>
      <label>Techniques <input name="techniques" placeholder="T1110" defaultValue={c?.techniques.join(", ")} /></label>
      <label>Source in <input name="sourceIn" placeholder="CIDRs" defaultValue={c?.sourceIn.join(", ")} /></label>
      <label>Source not in <input name="sourceNotIn" placeholder="CIDRs" defaultValue={c?.sourceNotIn.join(", ")} /></label>
      <label className="check"><input name="enabled" type="checkbox" defaultChecked={policy?.enabled ?? true} /> Enabled</label>
      <button type="submit" disabled={create.fetching || update.fetching}>{policy ? "Save policy" : "Add policy"}</button>
      {firstError(create.error, update.error) && <p className="error" role="alert">{firstError(create.error, update.error)}</p>}
    </form>
  );
}

export default function ResponsePage() {
  const session = useSession();
  const isAdmin = atLeast(session?.role, "ADMIN");
  const canDecide = atLeast(session?.role, "SOC_LEAD");
  const [result, reexecute] = useQuery({ query: ResponseQuery, variables: { isAdmin } });
  const refresh = () => reexecute({ requestPolicy: "network-only" });
  const [approval, approve] = useMutation(ApproveActionMutation);
  const [rejection, reject] = useMutation(RejectActionMutation);
  const [del, deletePolicy] = useMutation(DeletePolicyMutation);
  const [auto, setAuto] = useMutation(SetAutoContainmentMutation);
  const [settings, updateSettings] = useMutation(UpdateSettingsMutation);
  const [agentKey, createAgentKey] = useMutation(CreateAgentKeyMutation);
  const [revoke, revokeAgentKey] = useMutation(RevokeAgentKeyMutation);
  const [editing, setEditing] = useState<string | null>(null);
  const [newKeyName, setNewKeyName] = useState("");
  const data = result.data;
  const error = firstError(result.error, approval.error, rejection.error, del.error, auto.error, settings.error, agentKey.error, revoke.error);
  if (!data) return result.error ? <p className="error" role="alert">{result.error.message}</p> : <p role="status">Loading…</p>;
  const s = data.containmentSettings;
  return (
    <section aria-labelledby="response-title">
      <h1 id="response-title">Response</h1>
      {error && <p className="error" role="alert">{error}</p>}

      <section className="panel" aria-labelledby="approvals-title">
        <h2 id="approvals-title">Waiting for approval ({data.pending.nodes.length})</h2>
        <table aria-label="Actions waiting for approval"><thead><tr><th scope="col">Action</th><th scope="col">Target</th><th scope="col">Incident</th><th scope="col">Requested</th><th scope="col"><span className="visually-hidden">Decision</span></th></tr></thead>
          <tbody>{data.pending.nodes.map((a) => (
            <tr key={a.id}><td>{label(a.kind)}{a.policyName ? ` · ${a.policyName}` : ""}</td><td className="mono">{a.target}</td>
              <td>{a.incidentId && <Link to={`/incidents/${a.incidentId}`}>open</Link>}</td><td>{when(a.requestedAt)}</td>
              <td>{canDecide && <><button type="button" onClick={async () => { await approve({ id: a.id }); refresh(); }}>Approve</button>{" "}<button type="button" onClick={async () => { await reject({ id: a.id, reason: "Rejected from the console" }); refresh(); }}>Reject</button></>}</td></tr>
          ))}</tbody></table>
        {data.pending.nodes.length === 0 && <p>Nothing waits for approval.</p>}
      </section>

      <section className="panel" aria-labelledby="blocks-title">
        <h2 id="blocks-title">Active blocks</h2>
        <table aria-label="Active blocks"><thead><tr><th scope="col">Address</th><th scope="col">Since</th><th scope="col">Expires</th><th scope="col">Incident</th></tr></thead>
          <tbody>{data.activeBlocks.map((b) => (
            <tr key={b.actionId}><td className="mono">{b.ip}</td><td>{when(b.since)}</td><td>{b.expiresAt ? when(b.expiresAt) : "until lifted"}</td><td>{b.incidentId && <Link to={`/incidents/${b.incidentId}`}>open</Link>}</td></tr>
          ))}</tbody></table>
        {data.activeBlocks.length === 0 && <p>No blocks in force.</p>}
      </section>

      <section className="panel" aria-labelledby="actions-title">
        <h2 id="actions-title">Actions</h2>
        <table aria-label="Actions"><thead><tr><th scope="col">Action</th><th scope="col">Target</th><th scope="col">State</th><th scope="col">Attempts</th><th scope="col">Requested</th><th scope="col">Updated</th></tr></thead>
          <tbody>{data.actions.nodes.map((a) => (
            <tr key={a.id}><td>{label(a.kind)}{a.automatic ? " (auto)" : ""}</td><td className="mono">{a.target}</td><td><span className={`state state-${(a.status ?? "").toLowerCase()}`}>{label(a.status)}</span>{a.detail ? ` — ${a.detail}` : ""}</td><td className="num">{a.attempts}</td><td>{when(a.requestedAt)}</td><td>{when(a.updatedAt)}</td></tr>
          ))}</tbody></table>
      </section>

      <section className="panel" aria-labelledby="policies-title">
        <h2 id="policies-title">Containment policies (evaluated in priority order)</h2>
        <table aria-label="Containment policies"><thead><tr><th scope="col">Priority</th><th scope="col">Name</th><th scope="col">Mode</th><th scope="col">When</th><th scope="col">Then</th><th scope="col">Enabled</th>{isAdmin && <th scope="col"><span className="visually-hidden">Edit</span></th>}</tr></thead>
          <tbody>{data.containmentPolicies.map((p) => (
            <tr key={p.id}><td className="num">{p.priority}</td><td>{p.name}</td><td>{label(p.mode)}</td>
              <td>{[p.conditions.minSeverity && `severity ≥ ${label(p.conditions.minSeverity)}`, p.conditions.categories.length && `category ∈ ${p.conditions.categories.map(label).join(", ")}`, p.conditions.minRisk != null && `risk ≥ ${p.conditions.minRisk}`, p.conditions.techniques.length && `technique ∈ ${p.conditions.techniques.join(", ")}`, p.conditions.sourceIn.length && `source in ${p.conditions.sourceIn.join(", ")}`, p.conditions.sourceNotIn.length && `source not in ${p.conditions.sourceNotIn.join(", ")}`].filter(Boolean).join("; ") || "always"}</td>
              <td>{label(p.action.kind)}{p.action.durationSeconds ? ` for ${p.action.durationSeconds}s` : ""}</td><td>{p.enabled ? "yes" : "no"}</td>
              {isAdmin && <td><button type="button" onClick={() => setEditing(editing === p.id ? null : p.id)}>Edit</button>{" "}<button type="button" onClick={async () => { await deletePolicy({ id: p.id }); refresh(); }}>Delete</button></td>}</tr>
          ))}</tbody></table>
        {isAdmin && editing && <PolicyForm key={editing} policy={data.containmentPolicies.find((p) => p.id === editing)} onDone={() => { setEditing(null); refresh(); }} />}
        {isAdmin && !editing && <details><summary>Add a policy</summary><PolicyForm onDone={refresh} /></details>}
      </section>

      <section className="panel" aria-labelledby="rails-title">
        <h2 id="rails-title">Safety rails</h2>
        <dl className="facts">
          <div><dt>Auto-containment</dt><dd>{s.autoContainment ? "on" : "off"}</dd></div>
          <div><dt>Private targets</dt><dd>{s.allowPrivateTargets ? "allowed" : "refused"}</dd></div>
          <div><dt>Auto blocks per minute</dt><dd>{s.maxAutoBlocksPerMinute}</dd></div>
          <div><dt>Protected ranges</dt><dd className="mono">{s.protectedRanges.join(", ") || "none"}</dd></div>
        </dl>
        {isAdmin && (
          <form className="row" aria-label="Change safety rails" onSubmit={async (e) => {
            e.preventDefault();
            const f = new FormData(e.currentTarget);
            await updateSettings({ protectedRanges: list(String(f.get("ranges"))), allowPrivateTargets: f.get("private") === "on", maxAutoBlocksPerMinute: Number(f.get("cap")) });
            refresh();
          }}>
            <button type="button" onClick={async () => { await setAuto({ enabled: !s.autoContainment }); refresh(); }}>{s.autoContainment ? "Turn auto-containment off" : "Turn auto-containment on"}</button>
            <label>Protected ranges <input name="ranges" defaultValue={s.protectedRanges.join(", ")} /></label>
            <label>Auto blocks per minute <input name="cap" type="number" min={0} defaultValue={s.maxAutoBlocksPerMinute} /></label>
            <label className="check"><input name="private" type="checkbox" defaultChecked={s.allowPrivateTargets} /> Allow private targets</label>
            <button type="submit">Save rails</button>
          </form>
        )}
      </section>

      {isAdmin && data.agentKeys && (
        <section className="panel" aria-labelledby="agents-title">
          <h2 id="agents-title">Agent keys</h2>
          <form className="row" onSubmit={async (e) => { e.preventDefault(); await createAgentKey({ name: newKeyName }); setNewKeyName(""); refresh(); }}>
            <label>Key name <input value={newKeyName} required onChange={(e) => setNewKeyName(e.target.value)} /></label>
            <button type="submit">Create agent key</button>
          </form>
          {agentKey.data && <ShownOnce secret={agentKey.data.createAgentKey.key} command={`XDR_AGENT_KEY=${agentKey.data.createAgentKey.key} mini-xdr agent --server ${location.origin} --backend dry-run`} />}
          <table aria-label="Agent keys"><thead><tr><th scope="col">Name</th><th scope="col">Prefix</th><th scope="col">Created</th><th scope="col">Revoked</th><th scope="col"><span className="visually-hidden">Revoke</span></th></tr></thead>
            <tbody>{data.agentKeys.map((k) => (
              <tr key={k.id}><td>{k.name}</td><td className="mono">{k.prefix}…</td><td>{when(k.createdAt)}</td><td>{k.revokedAt ? when(k.revokedAt) : "—"}</td>
                <td>{!k.revokedAt && <button type="button" onClick={async () => { await revokeAgentKey({ id: k.id }); refresh(); }}>Revoke</button>}</td></tr>
            ))}</tbody></table>
        </section>
      )}
    </section>
  );
}
