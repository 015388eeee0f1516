// Events: search normalized telemetry by source address, type, source type and time; the raw
// record on demand.
import { useMemo, useState, type FormEvent } from "react";
import { useSearchParams } from "react-router";
import { useQuery } from "urql";
import { EventsQuery } from "../operations";
import { when } from "../format";
import { JsonView } from "../components/JsonView";

export default function EventsPage() {
  const [params, setParams] = useSearchParams();
  const filter = useMemo(() => {
    const f: Record<string, string> = {};
    for (const [k, p] of [["srcIp", "src"], ["eventType", "type"], ["sourceType", "source"]] as const) if (params.get(p)) f[k] = params.get(p)!;
    if (params.get("since")) f.since = new Date(params.get("since")!).toISOString();
    if (params.get("until")) f.until = new Date(params.get("until")!).toISOString();
    return f;
  }, [params]);
  const [result] = useQuery({ query: EventsQuery, variables: { filter, first: 100, after: params.get("after") } });
  const [open, setOpen] = useState<string | null>(null);
  const submit = (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const data = new FormData(e.currentTarget);
    const next = new URLSearchParams();
    for (const [k, v] of data.entries()) if (String(v).trim()) next.set(k, String(v).trim());
    setParams(next);
  };
  const events = result.data?.events.edges.map((e) => e.node) ?? [];
  return (
    <section aria-labelledby="events-title">
      <h1 id="events-title">Events</h1>
      <form className="filters" onSubmit={submit} aria-label="Search events">
        <label>Source IP <input name="src" defaultValue={params.get("src") ?? ""} /></label>
        <label>Event type <input name="type" defaultValue={params.get("type") ?? ""} placeholder="auth_failure" /></label>
        <label>Source type <input name="source" defaultValue={params.get("source") ?? ""} placeholder="cowrie" /></label>
        <label>From <input name="since" type="datetime-local" defaultValue={params.get("since") ?? ""} /></label>
        <label>Until <input name="until" type="datetime-local" defaultValue={params.get("until") ?? ""} /></label>
        <button type="submit">Search</button>
      </form>
      {result.error && <p className="error" role="alert">{result.error.message}</p>}
      <div className="table-wrap">
        <table className="events" aria-label="Events">
          <thead><tr><th scope="col">Time</th><th scope="col">Source type</th><th scope="col">Type</th><th scope="col">Source</th><th scope="col">Destination</th><th scope="col">User</th><th scope="col">Command / message</th><th scope="col">Raw</th></tr></thead>
          <tbody>
            {events.flatMap((e) => {
              const row = (
                <tr key={e.id}>
                  <td>{when(e.timestamp)}</td><td>{e.sourceType}</td><td>{e.eventType}</td>
                  <td className="mono">{e.srcIp ?? ""}{e.srcPort ? `:${e.srcPort}` : ""}</td>
                  <td className="mono">{e.dstIp ?? ""}{e.dstPort ? `:${e.dstPort}` : ""}</td>
                  <td>{e.username ?? ""}</td><td className="wrap">{e.command ?? e.url ?? e.message ?? ""}</td>
                  <td><button type="button" aria-expanded={open === e.id} onClick={() => setOpen(open === e.id ? null : e.id)}>{open === e.id ? "Hide raw" : "Raw record"}</button></td>
                </tr>
              );
              return open === e.id ? [row, <tr key={`${e.id}-raw`} className="raw"><td colSpan={8}><JsonView value={e.raw} label={`Raw record of event ${e.orgSeq}`} /></td></tr>] : [row];
            })}
          </tbody>
        </table>
        {!result.fetching && events.length === 0 && <p className="empty">No events match.</p>}
      </div>
      <nav className="pager" aria-label="Pages">
        {params.get("after") && <button type="button" onClick={() => { const n = new URLSearchParams(params); n.delete("after"); setParams(n); }}>Newest</button>}
        {result.data?.events.pageInfo.hasNextPage && (
          <button type="button" onClick={() => { const n = new URLSearchParams(params); n.set("after", result.data!.events.pageInfo.endCursor ?? ""); setParams(n); }}>Older</button>
        )}
      </nav>
    </section>
  );
}
