// One incident: why it was raised, its ATT&CK techniques, what was done (actions, status), the
// timeline, and the evidence events with their raw records.
import { useState } from "react";
import { Link, useParams } from "react-router";
import { useMutation, useQuery } from "urql";
import type { ActionRowFragment, IncidentStatus } from "../gql/graphql";
import {
  ApproveActionMutation,
  IncidentQuery,
  RejectActionMutation,
  RequestActionMutation,
  UpdateIncidentStatusMutation,
} from "../operations";
import { attackUrl, label, modelScores, when } from "../format";
import { atLeast } from "../session";
import { useSession } from "../useSession";
import { JsonView } from "../components/JsonView";

const DURATIONS: { label: string; seconds: number | null }[] = [
  { label: "1 hour", seconds: 3600 },
  { label: "24 hours", seconds: 86400 },
  { label: "7 days", seconds: 7 * 86400 },
  { label: "Until lifted", seconds: null },
];

/** Where an incident may go from its status (the server's lifecycle). */
const NEXT_STATUS: Record<string, IncidentStatus[]> = {
  OPEN: ["CONTAINED", "DISMISSED", "RESOLVED"],
  CONTAINED: ["OPEN", "RESOLVED"],
  DISMISSED: [],
  RESOLVED: [],
};

function errorText(e: { graphQLErrors?: { message: string }[]; message: string } | undefined): string | null {
  return e ? (e.graphQLErrors?.[0]?.message ?? e.message) : null;
}

function timelineSummary(kind: string, detail: unknown): string {
  const d = (detail ?? {}) as Record<string, unknown>;
  const parts: string[] = [];
  for (const key of ["severity", "status", "from", "to", "kind", "target", "policy_name", "reason", "note", "detail", "count", "duration_seconds"]) {
    const v = d[key];
    if (v !== undefined && v !== null && v !== "") parts.push(`${key.replace(/_/g, " ")}: ${typeof v === "object" ? JSON.stringify(v) : String(v)}`);
  }
  return parts.length ? parts.join(" · ") : kind === "evidence" ? "evidence attached" : "";
}

/** `[{name, value}]` (what the detector records) or a `{name: value}` object, as pairs. */
export function featureList(top: unknown): [string, unknown][] {
  if (Array.isArray(top))
    return top.map((f, i) => (f && typeof f === "object" && "name" in f ? [String(f.name), (f as { value?: unknown }).value] : [String(i), f]));
  if (top && typeof top === "object") return Object.entries(top);
  return [];
}

export function IncidentPage() {
  const { id = "" } = useParams();
  const session = useSession();
  const [result, reexecute] = useQuery({ query: IncidentQuery, variables: { id } });
  const [request, requestAction] = useMutation(RequestActionMutation);
  const [statusChange, updateStatus] = useMutation(UpdateIncidentStatusMutation);
  const [approval, approve] = useMutation(ApproveActionMutation);
  const [rejection, reject] = useMutation(RejectActionMutation);
  const [duration, setDuration] = useState<number | null>(3600);
  const [requireApproval, setRequireApproval] = useState(false);
  const [nextStatus, setNextStatus] = useState<IncidentStatus | "">("");
  const [note, setNote] = useState("");
  const [openRaw, setOpenRaw] = useState<Set<string>>(new Set());
  const refresh = () => reexecute({ requestPolicy: "network-only" });

  if (result.fetching && !result.data) return <p role="status">Loading…</p>;
  if (result.error) return <p className="error" role="alert">{result.error.message}</p>;
  const incident = result.data?.incident;
  if (!incident)
    return (
      <section>
        <h1>Incident not found</h1>
        <p>No incident with this id in your organization. <Link to="/incidents">Back to the queue</Link>.</p>
      </section>
    );

  const canAct = atLeast(session?.role, "ANALYST");
  const canDecide = atLeast(session?.role, "SOC_LEAD");
  const model = modelScores(incident.model);
  const features = featureList(incident.topFeatures);
  const actions = incident.actions as ActionRowFragment[];
  const blocked = actions.some((a) => a.kind === "BLOCK_IP" && (a.status === "DISPATCHED" || a.status === "SUCCEEDED" || a.status === "APPROVED"));
  const allowed = NEXT_STATUS[incident.status ?? ""] ?? [];

  const contain = async () => {
    await requestAction({ incidentId: incident.id, kind: "BLOCK_IP", params: { durationSeconds: duration, requireApproval } });
    refresh();
  };
  const unblock = async () => {
    await requestAction({ incidentId: incident.id, kind: "UNBLOCK_IP" });
    refresh();
  };
  const changeStatus = async () => {
    if (!nextStatus) return;
    const r = await updateStatus({ id: incident.id, status: nextStatus, note: note || null });
    if (!r.error) {
      setNote("");
      setNextStatus("");
    }
    refresh();
  };
  const actionError = errorText(request.error) ?? errorText(approval.error) ?? errorText(rejection.error);

  return (
    <article aria-labelledby="incident-title" className="incident">
      <p className="crumbs"><Link to="/incidents">Incidents</Link> / {incident.srcIp}</p>
      <header className="incident-head">
        <h1 id="incident-title">
          <span className={`sev sev-${(incident.severity ?? "unknown").toLowerCase()}`}>{label(incident.severity)}</span>{" "}
          {label(incident.category)} from <span className="mono">{incident.srcIp}</span>
        </h1>
        <dl className="facts">
          <div><dt>Status</dt><dd>{label(incident.status)}</dd></div>
          <div><dt>Risk</dt><dd>{incident.riskScore.toFixed(2)}</dd></div>
          <div><dt>Confidence</dt><dd>{incident.confidence.toFixed(2)}</dd></div>
          <div><dt>Events</dt><dd>{incident.eventCount}</dd></div>
          <div><dt>First seen</dt><dd>{when(incident.firstSeen)}</dd></div>
          <div><dt>Last seen</dt><dd>{when(incident.lastSeen)}</dd></div>
        </dl>
      </header>

      <div className="columns">
        <section aria-labelledby="why-title" className="panel">
          <h2 id="why-title">Why</h2>
          <p>{incident.reason}</p>
          <h3>Detectors</h3>
          <ul className="tags">{incident.detectors.map((d) => <li key={d} className="tag">{d}</li>)}</ul>
          <h3>ATT&amp;CK techniques</h3>
          <ul className="tags">
            {incident.attackTechniques.map((t) => (
              <li key={t}><a href={attackUrl(t)} target="_blank" rel="noreferrer noopener" className="mono">{t}</a></li>
            ))}
            {incident.attackTechniques.length === 0 && <li>None</li>}
          </ul>
          <h3>Features that drove it</h3>
          {features.length ? (
            <table className="kv"><tbody>
              {features.map(([k, v]) => (
                <tr key={k}><th scope="row">{k.replace(/_/g, " ")}</th><td className="num">{typeof v === "number" ? Number(v.toFixed(4)) : JSON.stringify(v)}</td></tr>
              ))}
            </tbody></table>
          ) : <p>No features recorded.</p>}
          <h3>Model</h3>
          {model ? (
            <>
              {model.model && <p>{model.model}{model.predicted_class ? `: ${model.predicted_class}` : ""}</p>}
              {model.class_probabilities && (
                <ul className="bars" aria-label="Class probabilities">
                  {Object.entries(model.class_probabilities).sort((a, b) => b[1] - a[1]).map(([c, p]) => (
                    <li key={c}>
                      <span className="bar-label">{c}</span>
                      <meter min={0} max={1} value={p} aria-label={`${c} probability`} />
                      <span className="num">{(p * 100).toFixed(1)}%</span>
                    </li>
                  ))}
                </ul>
              )}
              {model.baseline_score !== undefined && <p>Baseline score (this org's normal = low): <strong>{model.baseline_score.toFixed(3)}</strong></p>}
            </>
          ) : <p>No model contributed.</p>}
        </section>

        <section aria-labelledby="respond-title" className="panel">
          <h2 id="respond-title">Respond</h2>
          {canAct ? (
            <>
              <div className="row">
                <label>Block for
                  <select value={duration ?? ""} onChange={(e) => setDuration(e.target.value ? Number(e.target.value) : null)}>
                    {DURATIONS.map((d) => <option key={d.label} value={d.seconds ?? ""}>{d.label}</option>)}
                  </select>
                </label>
                <label className="check"><input type="checkbox" checked={requireApproval} onChange={(e) => setRequireApproval(e.target.checked)} /> Four-eyes approval</label>
              </div>
              <div className="row">
                <button type="button" className="danger" onClick={contain} disabled={request.fetching}>Contain {incident.srcIp}</button>
                <button type="button" onClick={unblock} disabled={request.fetching || !blocked}>Unblock</button>
              </div>
              {allowed.length > 0 && (
                <div className="row">
                  <label>Status
                    <select value={nextStatus} onChange={(e) => setNextStatus(e.target.value as IncidentStatus)}>
                      <option value="">Choose…</option>
                      {allowed.map((s) => <option key={s} value={s}>{label(s)}</option>)}
                    </select>
                  </label>
                  <label>Note <input value={note} onChange={(e) => setNote(e.target.value)} /></label>
                  <button type="button" onClick={changeStatus} disabled={!nextStatus || statusChange.fetching}>Change status</button>
                </div>
              )}
              {errorText(statusChange.error) && <p className="error" role="alert">{errorText(statusChange.error)}</p>}
            </>
          ) : <p>Your role (viewer) can read incidents but not act on them.</p>}
          {actionError && <p className="error" role="alert">{actionError}</p>}
          <h3>Actions</h3>
          {actions.length ? (
            <table className="actions" aria-label="Actions on this incident">
              <thead><tr><th scope="col">Action</th><th scope="col">Target</th><th scope="col">State</th><th scope="col">Requested</th><th scope="col">Expires</th><th scope="col"><span className="visually-hidden">Decision</span></th></tr></thead>
              <tbody>
                {actions.map((a) => (
                  <tr key={a.id}>
                    <td>{label(a.kind)}{a.automatic ? " (auto)" : ""}{a.policyName ? ` · ${a.policyName}` : ""}</td>
                    <td className="mono">{a.target}</td>
                    <td><span className={`state state-${(a.status ?? "").toLowerCase()}`}>{label(a.status)}</span>{a.detail ? ` — ${a.detail}` : ""}</td>
                    <td>{when(a.requestedAt)}</td>
                    <td>{a.expiresAt ? when(a.expiresAt) : a.durationSeconds ? `${a.durationSeconds}s after success` : "—"}</td>
                    <td>
                      {a.status === "PENDING_APPROVAL" && canDecide && (
                        <>
                          <button type="button" onClick={async () => { await approve({ id: a.id }); refresh(); }}>Approve</button>{" "}
                          <button type="button" onClick={async () => { await reject({ id: a.id, reason: "Rejected from the console" }); refresh(); }}>Reject</button>
                        </>
                      )}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          ) : <p>Nothing done yet.</p>}
        </section>
      </div>

      <section aria-labelledby="timeline-title" className="panel">
        <h2 id="timeline-title">Timeline</h2>
        <ol className="timeline">
          {incident.timeline.map((t) => (
            <li key={t.orgSeq} className={`tl tl-${t.kind}`}>
              <time dateTime={t.at}>{when(t.at)}</time>
              <strong>{t.kind.replace(/_/g, " ")}</strong>
              <span className="actor">{t.actor ?? "system"}</span>
              <span className="detail">{timelineSummary(t.kind, t.detail)}</span>
            </li>
          ))}
        </ol>
      </section>

      <section aria-labelledby="evidence-title" className="panel">
        <h2 id="evidence-title">Evidence ({incident.events.length} of {incident.evidenceSeqs.length} events)</h2>
        <table className="events" aria-label="Evidence events">
          <thead><tr><th scope="col">Time</th><th scope="col">Type</th><th scope="col">Source</th><th scope="col">User</th><th scope="col">Command / message</th><th scope="col">Raw</th></tr></thead>
          <tbody>
            {incident.events.flatMap((e) => {
              const open = openRaw.has(e.id);
              const row = (
                <tr key={e.id}>
                  <td>{when(e.timestamp)}</td>
                  <td>{e.eventType}</td>
                  <td className="mono">{e.srcIp}{e.srcPort ? `:${e.srcPort}` : ""}</td>
                  <td>{e.username ?? ""}</td>
                  <td className="wrap">{e.command ?? e.message ?? ""}</td>
                  <td>
                    <button type="button" aria-expanded={open} onClick={() => setOpenRaw((s) => { const n = new Set(s); if (open) n.delete(e.id); else n.add(e.id); return n; })}>
                      {open ? "Hide raw" : "Raw record"}
                    </button>
                  </td>
                </tr>
              );
              return open ? [row, <tr key={`${e.id}-raw`} className="raw"><td colSpan={6}><JsonView value={e.raw} label={`Raw record of event ${e.orgSeq}`} /></td></tr>] : [row];
            })}
          </tbody>
        </table>
      </section>
    </article>
  );
}
