// Overview: incidents by severity, status and category, telemetry per hour, top sources and
// active blocks, over a selectable time range.
import { useMemo } from "react";
import { Link, useSearchParams } from "react-router";
import { useQuery } from "urql";
import type { ChartConfiguration } from "chart.js";
import { StatsQuery } from "../operations";
import { RANGES, rangeStart } from "../filters";
import { label, when } from "../format";
import { ChartCanvas } from "../components/Chart";

const COLORS: Record<string, string> = { critical: "#ef4444", high: "#f97316", medium: "#eab308", low: "#22c55e" };

function bar(counts: { key: string; count: number }[], title: string): ChartConfiguration {
  return {
    type: "bar",
    data: {
      labels: counts.map((c) => label(c.key)),
      datasets: [{ label: title, data: counts.map((c) => c.count), backgroundColor: counts.map((c) => COLORS[c.key] ?? "#38bdf8") }],
    },
    options: { responsive: true, maintainAspectRatio: false, animation: false, plugins: { legend: { display: false } }, scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } },
  };
}

function CountPanel({ title, counts, field }: { title: string; counts: { key: string; count: number }[]; field: string }) {
  const config = useMemo(() => bar(counts, title), [counts, title]);
  return (
    <section className="panel" aria-labelledby={`${field}-title`}>
      <h2 id={`${field}-title`}>{title}</h2>
      <ChartCanvas config={config} label={`${title}: ${counts.map((c) => `${label(c.key)} ${c.count}`).join(", ") || "none"}`} />
      <table className="kv"><tbody>
        {counts.map((c) => (
          <tr key={c.key}><th scope="row"><Link to={`/incidents?${field}=${c.key.toUpperCase()}`}>{label(c.key)}</Link></th><td className="num">{c.count}</td></tr>
        ))}
      </tbody></table>
    </section>
  );
}

export default function OverviewPage() {
  const [params, setParams] = useSearchParams();
  const range = params.get("range") ?? "7d";
  const since = useMemo(() => rangeStart(range), [range]);
  const [result] = useQuery({ query: StatsQuery, variables: { since } });
  const stats = result.data?.stats;
  const hourly = useMemo<ChartConfiguration | null>(
    () =>
      stats ? {
        type: "line",
        data: {
          labels: stats.eventsPerHour.map((h) => when(h.hour).slice(5, 16)),
          datasets: [{ label: "Events per hour", data: stats.eventsPerHour.map((h) => h.count), borderColor: "#38bdf8", backgroundColor: "#38bdf8" }],
        },
        options: { responsive: true, maintainAspectRatio: false, animation: false, scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } },
      } : null,
    [stats],
  );
  return (
    <section aria-labelledby="overview-title">
      <div className="page-head">
        <h1 id="overview-title">Overview</h1>
        <label>Time range
          <select value={range} onChange={(e) => setParams({ range: e.target.value })}>
            {Object.entries(RANGES).map(([k, r]) => <option key={k} value={k}>{r.label}</option>)}
          </select>
        </label>
      </div>
      {result.error && <p className="error" role="alert">{result.error.message}</p>}
      {stats && (
        <div className="grid">
          <CountPanel title="By severity" counts={stats.incidentsBySeverity} field="severity" />
          <CountPanel title="By status" counts={stats.incidentsByStatus} field="status" />
          <CountPanel title="By category" counts={stats.incidentsByCategory} field="category" />
          <section className="panel wide" aria-labelledby="hourly-title">
            <h2 id="hourly-title">Telemetry per hour</h2>
            {hourly && <ChartCanvas config={hourly} label={`Events per hour, ${stats.eventsPerHour.reduce((n, h) => n + h.count, 0)} in total`} />}
          </section>
          <section className="panel" aria-labelledby="sources-title">
            <h2 id="sources-title">Top sources</h2>
            <table className="kv"><tbody>
              {stats.topSources.map((s) => (
                <tr key={s.key}><th scope="row"><Link className="mono" to={`/incidents?src=${encodeURIComponent(s.key)}`}>{s.key}</Link></th><td className="num">{s.count}</td></tr>
              ))}
            </tbody></table>
            {stats.topSources.length === 0 && <p>No incidents in this range.</p>}
          </section>
          <section className="panel" aria-labelledby="blocks-title">
            <h2 id="blocks-title">Active blocks</h2>
            <table className="kv"><tbody>
              {result.data!.activeBlocks.map((b) => (
                <tr key={b.actionId}><th scope="row" className="mono">{b.ip}</th><td>{b.expiresAt ? `until ${when(b.expiresAt)}` : "until lifted"}</td></tr>
              ))}
            </tbody></table>
            {result.data!.activeBlocks.length === 0 && <p>No blocks in force.</p>}
          </section>
        </div>
      )}
    </section>
  );
}
