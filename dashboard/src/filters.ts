// The queue's view lives in the URL: a link reproduces it. `status=OPEN` keeps only that value,
// `-status=DISMISSED` (repeatable) leaves a value out.
import type { IncidentFilter, IncidentCategory, IncidentStatus, Severity } from "./gql/graphql";

export const FIELDS = ["status", "severity", "category", "src", "detector", "technique"] as const;
export type Field = (typeof FIELDS)[number];

export const RANGES: Record<string, { label: string; hours: number | null }> = {
  "1h": { label: "Last hour", hours: 1 },
  "24h": { label: "Last 24 hours", hours: 24 },
  "7d": { label: "Last 7 days", hours: 24 * 7 },
  "30d": { label: "Last 30 days", hours: 24 * 30 },
  all: { label: "All time", hours: null },
};

/** The start of a range, or the epoch for "all time" (the API defaults to 24 h otherwise). */
export function rangeStart(range: string | null, now = Date.now()): string {
  const hours = RANGES[range ?? "all"]?.hours ?? null;
  return new Date(hours === null ? 0 : now - hours * 3_600_000).toISOString();
}

export function toIncidentFilter(params: URLSearchParams, now = Date.now()): IncidentFilter {
  const range = params.get("range");
  const one = (k: Field) => params.get(k) || undefined;
  const many = (k: Field) => params.getAll(`-${k}`).filter(Boolean);
  const filter: IncidentFilter = {
    status: one("status") as IncidentStatus | undefined,
    severity: one("severity") as Severity | undefined,
    category: one("category") as IncidentCategory | undefined,
    srcIp: one("src"),
    detector: one("detector"),
    technique: one("technique"),
    since: range && range !== "all" ? rangeStart(range, now) : undefined,
    exclude: {
      statuses: many("status") as IncidentStatus[],
      severities: many("severity") as Severity[],
      categories: many("category") as IncidentCategory[],
      srcIps: many("src"),
      detectors: many("detector"),
      techniques: many("technique"),
    },
  };
  return Object.fromEntries(Object.entries(filter).filter(([, v]) => v !== undefined)) as IncidentFilter;
}

/** `+` keeps only `value` for `field`; `-` adds it to the exclusions. Paging starts over. */
export function withCellFilter(params: URLSearchParams, field: Field, value: string, mode: "+" | "-"): URLSearchParams {
  const next = new URLSearchParams(params);
  next.delete("after");
  if (mode === "+") {
    next.set(field, value);
    const rest = next.getAll(`-${field}`).filter((v) => v !== value);
    next.delete(`-${field}`);
    rest.forEach((v) => next.append(`-${field}`, v));
  } else {
    if (next.get(field) === value) next.delete(field);
    if (!next.getAll(`-${field}`).includes(value)) next.append(`-${field}`, value);
  }
  return next;
}

export function withoutFilter(params: URLSearchParams, key: string, value?: string): URLSearchParams {
  const next = new URLSearchParams(params);
  next.delete("after");
  if (value === undefined) next.delete(key);
  else {
    const rest = next.getAll(key).filter((v) => v !== value);
    next.delete(key);
    rest.forEach((v) => next.append(key, v));
  }
  return next;
}

/** The active filters as removable chips. */
export function activeFilters(params: URLSearchParams): { key: string; value: string; label: string }[] {
  const out: { key: string; value: string; label: string }[] = [];
  for (const f of FIELDS) {
    const v = params.get(f);
    if (v) out.push({ key: f, value: v, label: `${f} = ${v}` });
    for (const x of params.getAll(`-${f}`)) out.push({ key: `-${f}`, value: x, label: `${f} ≠ ${x}` });
  }
  return out;
}
