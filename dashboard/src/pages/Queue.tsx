// The incident queue: newest activity first, live over the incidentUpdates subscription,
// filters in the URL, one-click +/- cell filters, j/k/Enter, bulk status change, cursor paging.
import { useCallback, useEffect, useMemo, useRef, useState, type ReactNode } from "react";
import { Link, useNavigate, useSearchParams } from "react-router";
import { useMutation, useQuery, useSubscription } from "urql";
import { createColumnHelper, flexRender, getCoreRowModel, useReactTable } from "@tanstack/react-table";
import type { IncidentRowFragment, IncidentStatus } from "../gql/graphql";
import { IncidentsQuery, IncidentUpdatesSubscription, UpdateIncidentStatusMutation } from "../operations";
import { activeFilters, RANGES, rangeStart, toIncidentFilter, withCellFilter, withoutFilter, type Field } from "../filters";
import { ago, label, verdict, when } from "../format";
import { onLiveReconnect } from "../client";
import { atLeast, refresh } from "../session";
import { useSession } from "../useSession";

const PAGE = 50;
const STATUSES: IncidentStatus[] = ["OPEN", "CONTAINED", "DISMISSED", "RESOLVED"];
const SEVERITIES = ["CRITICAL", "HIGH", "MEDIUM", "LOW"];
const CATEGORIES = ["BRUTE_FORCE", "COMPROMISE", "RECON", "DDOS", "WEB_ATTACK", "MALWARE_BOTNET", "APT", "NORMAL"];

/** A value with its two filter buttons: keep only this value, or leave it out. */
function CellFilter({ field, value, children }: { field: Field; value: string; children?: ReactNode }) {
  const [params, setParams] = useSearchParams();
  return (
    <span className="cell-filter">
      {children ?? value}
      <span className="cf-buttons">
        <button type="button" className="cf" aria-label={`Only ${field} ${value}`} title={`Only ${value}`} onClick={(e) => { e.stopPropagation(); setParams(withCellFilter(params, field, value, "+")); }}>+</button>
        <button type="button" className="cf" aria-label={`Exclude ${field} ${value}`} title={`Exclude ${value}`} onClick={(e) => { e.stopPropagation(); setParams(withCellFilter(params, field, value, "-")); }}>−</button>
      </span>
    </span>
  );
}

const column = createColumnHelper<IncidentRowFragment>();

export function QueuePage() {
  const [params, setParams] = useSearchParams();
  const navigate = useNavigate();
  const session = useSession();
  const canChange = atLeast(session?.role, "ANALYST");
  const after = params.get("after");
  const filter = useMemo(() => toIncidentFilter(params), [params]);
  const since = useMemo(() => rangeStart(params.get("range")), [params]);
  const [result, reexecute] = useQuery({ query: IncidentsQuery, variables: { filter, first: PAGE, after, since } });
  const [selected, setSelected] = useState<Set<string>>(new Set());
  const [cursor, setCursor] = useState(0);
  const [changed, setChanged] = useState<Map<string, number>>(new Map());
  const [bulkStatus, setBulkStatus] = useState<IncidentStatus>("RESOLVED");
  const [bulkMessage, setBulkMessage] = useState<string | null>(null);
  const [, updateStatus] = useMutation(UpdateIncidentStatusMutation);
  const tableRef = useRef<HTMLTableElement>(null);

  // Live: every update re-reads the current page (so filters, order and counts stay right),
  // batched so a burst of detections costs one query.
  const refetchTimer = useRef<ReturnType<typeof setTimeout>>(undefined);
  const onUpdate = useCallback(
    (_: unknown, update: { incidentUpdates: IncidentRowFragment }) => {
      const id = update.incidentUpdates.id;
      setChanged((m) => new Map(m).set(id, Date.now()));
      clearTimeout(refetchTimer.current);
      refetchTimer.current = setTimeout(() => reexecute({ requestPolicy: "network-only" }), 250);
      return update;
    },
    [reexecute],
  );
  const [live, resubscribe] = useSubscription({ query: IncidentUpdatesSubscription }, onUpdate);
  useEffect(() => () => clearTimeout(refetchTimer.current), []);
  useEffect(() => onLiveReconnect(() => reexecute({ requestPolicy: "network-only" })), [reexecute]);
  // The server ends a subscription whose session ended; when only the token had run out, a
  // refresh brings a new one (and a new socket) and live updates go on. At most once every
  // 30 s, so a session that keeps being refused does not loop.
  const lastRenewal = useRef(0);
  useEffect(() => {
    if (!live.error?.graphQLErrors.some((e) => e.extensions?.reason === "SESSION_ENDED")) return;
    if (Date.now() - lastRenewal.current < 30_000) return;
    lastRenewal.current = Date.now();
    let cancelled = false;
    void refresh().then((renewed) => {
      if (renewed && !cancelled) resubscribe({ requestPolicy: "network-only" });
    });
    return () => {
      cancelled = true;
    };
  }, [live.error, resubscribe]);

  const rows = useMemo(() => result.data?.incidents.edges.map((e) => e.node) ?? [], [result.data]);
  useEffect(() => setCursor((c) => Math.min(c, Math.max(rows.length - 1, 0))), [rows.length]);

  const columns = useMemo(
    () => [
      column.display({
        id: "select",
        header: () => (
          <input
            type="checkbox"
            aria-label="Select all incidents on this page"
            checked={rows.length > 0 && rows.every((r) => selected.has(r.id))}
            onChange={(e) => setSelected(e.target.checked ? new Set(rows.map((r) => r.id)) : new Set())}
          />
        ),
        cell: ({ row }) => (
          <input
            type="checkbox"
            aria-label={`Select incident from ${row.original.srcIp}`}
            checked={selected.has(row.original.id)}
            onClick={(e) => e.stopPropagation()}
            onChange={(e) =>
              setSelected((s) => {
                const next = new Set(s);
                if (e.target.checked) next.add(row.original.id);
                else next.delete(row.original.id);
                return next;
              })
            }
          />
        ),
      }),
      column.accessor("severity", {
        header: "Severity",
        cell: (c) => (
          <CellFilter field="severity" value={c.getValue() ?? "UNKNOWN"}>
            <span className={`sev sev-${(c.getValue() ?? "unknown").toLowerCase()}`}>{label(c.getValue())}</span>
          </CellFilter>
        ),
      }),
      column.accessor("status", {
        header: "Status",
        cell: (c) => <CellFilter field="status" value={c.getValue() ?? "UNKNOWN"}>{label(c.getValue())}</CellFilter>,
      }),
      column.accessor("category", {
        header: "Category",
        cell: (c) => <CellFilter field="category" value={c.getValue() ?? "UNKNOWN"}>{label(c.getValue())}</CellFilter>,
      }),
      column.accessor("srcIp", {
        header: "Source",
        cell: (c) => (
          <CellFilter field="src" value={c.getValue()}>
            <Link to={`/incidents/${c.row.original.id}`} className="mono">{c.getValue()}</Link>
          </CellFilter>
        ),
      }),
      column.accessor("detectors", {
        header: "Detectors",
        cell: (c) => (
          <span className="tags">
            {c.getValue().map((d) => <CellFilter key={d} field="detector" value={d} />)}
          </span>
        ),
      }),
      column.accessor("attackTechniques", {
        header: "ATT&CK",
        cell: (c) => (
          <span className="tags">
            {c.getValue().map((t) => <CellFilter key={t} field="technique" value={t}><span className="mono">{t}</span></CellFilter>)}
          </span>
        ),
      }),
      column.accessor("riskScore", { header: "Risk", cell: (c) => <span className="num">{c.getValue().toFixed(2)}</span> }),
      column.accessor("model", { header: "Model verdict", cell: (c) => verdict(c.getValue()) }),
      column.accessor("eventCount", { header: "Events", cell: (c) => <span className="num">{c.getValue()}</span> }),
      column.accessor("lastSeen", {
        header: "Last seen",
        cell: (c) => <time dateTime={c.getValue()} title={when(c.getValue())}>{ago(c.getValue())}</time>,
      }),
    ],
    [rows, selected],
  );
  const table = useReactTable({ data: rows, columns, getCoreRowModel: getCoreRowModel(), getRowId: (r) => r.id });

  // j/k move, Enter opens, x selects: the queue can be worked without the mouse.
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      const target = e.target as HTMLElement;
      if (e.ctrlKey || e.metaKey || e.altKey || /^(INPUT|SELECT|TEXTAREA|BUTTON)$/.test(target.tagName)) return;
      if (e.key === "j") setCursor((c) => Math.min(c + 1, rows.length - 1));
      else if (e.key === "k") setCursor((c) => Math.max(c - 1, 0));
      else if (e.key === "Enter" && rows[cursor]) navigate(`/incidents/${rows[cursor].id}`);
      else if (e.key === "x" && rows[cursor])
        setSelected((s) => {
          const next = new Set(s);
          const id = rows[cursor].id;
          if (next.has(id)) next.delete(id);
          else next.add(id);
          return next;
        });
      else return;
      e.preventDefault();
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [rows, cursor, navigate]);
  useEffect(() => {
    tableRef.current?.querySelector(`tbody tr:nth-child(${cursor + 1})`)?.scrollIntoView({ block: "nearest" });
  }, [cursor]);

  const applyBulk = async () => {
    const ids = [...selected];
    const outcomes = await Promise.all(ids.map((id) => updateStatus({ id, status: bulkStatus })));
    const failed = outcomes.filter((o) => o.error);
    setBulkMessage(
      failed.length
        ? `${ids.length - failed.length} of ${ids.length} changed; ${failed.length} refused: ${failed[0].error!.graphQLErrors[0]?.message ?? failed[0].error!.message}`
        : `${ids.length} incident${ids.length === 1 ? "" : "s"} set to ${label(bulkStatus)}.`,
    );
    setSelected(new Set());
    reexecute({ requestPolicy: "network-only" });
  };

  const stats = result.data?.stats;
  const countOf = (list: { key: string; count: number }[] | undefined, key: string) =>
    list?.find((c) => c.key.toUpperCase() === key)?.count ?? 0;
  const setParam = (key: string, value: string) => {
    const next = new URLSearchParams(params);
    next.delete("after");
    if (value) next.set(key, value);
    else next.delete(key);
    setParams(next);
  };

  return (
    <section aria-labelledby="queue-title">
      <div className="page-head">
        <h1 id="queue-title">Incidents</h1>
        <span className={`live ${live.error ? "off" : "on"}`} role="status">
          {live.error ? "Live updates interrupted (reconnecting)" : "Live"}
        </span>
      </div>

      <div className="counts" aria-label="Counts">
        <div role="group" aria-label="By status">
          {STATUSES.map((s) => (
            <button key={s} type="button" className={`count ${params.get("status") === s ? "active" : ""}`} aria-pressed={params.get("status") === s} onClick={() => setParam("status", params.get("status") === s ? "" : s)}>
              {label(s)} <strong>{countOf(stats?.incidentsByStatus, s)}</strong>
            </button>
          ))}
        </div>
        <div role="group" aria-label="By severity">
          {SEVERITIES.map((s) => (
            <button key={s} type="button" className={`count sev-${s.toLowerCase()} ${params.get("severity") === s ? "active" : ""}`} aria-pressed={params.get("severity") === s} onClick={() => setParam("severity", params.get("severity") === s ? "" : s)}>
              {label(s)} <strong>{countOf(stats?.incidentsBySeverity, s)}</strong>
            </button>
          ))}
        </div>
      </div>

      <form className="filters" onSubmit={(e) => e.preventDefault()} aria-label="Filters">
        <label>Status
          <select value={params.get("status") ?? ""} onChange={(e) => setParam("status", e.target.value)}>
            <option value="">Any</option>
            {STATUSES.map((s) => <option key={s} value={s}>{label(s)}</option>)}
          </select>
        </label>
        <label>Severity
          <select value={params.get("severity") ?? ""} onChange={(e) => setParam("severity", e.target.value)}>
            <option value="">Any</option>
            {SEVERITIES.map((s) => <option key={s} value={s}>{label(s)}</option>)}
          </select>
        </label>
        <label>Category
          <select value={params.get("category") ?? ""} onChange={(e) => setParam("category", e.target.value)}>
            <option value="">Any</option>
            {CATEGORIES.map((s) => <option key={s} value={s}>{label(s)}</option>)}
          </select>
        </label>
        <label>Source
          <input key={params.get("src") ?? ""} defaultValue={params.get("src") ?? ""} placeholder="IP address" onBlur={(e) => setParam("src", e.target.value.trim())} onKeyDown={(e) => { if (e.key === "Enter") setParam("src", e.currentTarget.value.trim()); }} />
        </label>
        <label>Time range
          <select value={params.get("range") ?? "all"} onChange={(e) => setParam("range", e.target.value === "all" ? "" : e.target.value)}>
            {Object.entries(RANGES).map(([k, r]) => <option key={k} value={k}>{r.label}</option>)}
          </select>
        </label>
      </form>

      {activeFilters(params).length > 0 && (
        <ul className="chips" aria-label="Active filters">
          {activeFilters(params).map((f) => (
            <li key={`${f.key}=${f.value}`}>
              {f.label}
              <button type="button" aria-label={`Remove filter ${f.label}`} onClick={() => setParams(withoutFilter(params, f.key, f.value))}>×</button>
            </li>
          ))}
          <li><button type="button" className="link" onClick={() => setParams(new URLSearchParams())}>Clear all</button></li>
        </ul>
      )}

      {canChange && (
        <div className="bulk" role="group" aria-label="Bulk status change">
          <span>{selected.size} selected</span>
          <label>New status
            <select value={bulkStatus} onChange={(e) => setBulkStatus(e.target.value as IncidentStatus)}>
              {STATUSES.map((s) => <option key={s} value={s}>{label(s)}</option>)}
            </select>
          </label>
          <button type="button" disabled={selected.size === 0} onClick={applyBulk}>Apply to selected</button>
          {bulkMessage && <span role="status">{bulkMessage}</span>}
        </div>
      )}

      {result.error && <p className="error" role="alert">{result.error.message}</p>}
      <div className="table-wrap">
        <table ref={tableRef} className="queue" aria-label="Incident queue" aria-rowcount={rows.length}>
          <thead>
            {table.getHeaderGroups().map((g) => (
              <tr key={g.id}>{g.headers.map((h) => <th key={h.id} scope="col">{flexRender(h.column.columnDef.header, h.getContext())}</th>)}</tr>
            ))}
          </thead>
          <tbody>
            {table.getRowModel().rows.map((row, i) => {
              const flash = (changed.get(row.id) ?? 0) > Date.now() - 5000;
              return (
                <tr
                  key={row.id}
                  className={`${i === cursor ? "cursor" : ""} ${flash ? "flash" : ""}`}
                  onClick={() => setCursor(i)}
                  onDoubleClick={() => navigate(`/incidents/${row.id}`)}
                >
                  {row.getVisibleCells().map((cell) => <td key={cell.id}>{flexRender(cell.column.columnDef.cell, cell.getContext())}</td>)}
                </tr>
              );
            })}
          </tbody>
        </table>
        {!result.fetching && rows.length === 0 && <p className="empty">No incidents match this view. New ones appear here as they are detected.</p>}
      </div>
      <nav className="pager" aria-label="Pages">
        {after && <button type="button" onClick={() => setParam("after", "")}>Newest</button>}
        {result.data?.incidents.pageInfo.hasNextPage && (
          <button type="button" onClick={() => setParam("after", result.data!.incidents.pageInfo.endCursor ?? "")}>Older</button>
        )}
        <span className="hint">Keys: j/k move, Enter opens, x selects.</span>
      </nav>
    </section>
  );
}
