export function when(iso: string | null | undefined): string {
  if (!iso) return "—";
  const d = new Date(iso);
  return d.toISOString().replace("T", " ").slice(0, 19) + "Z";
}

export function ago(iso: string, now = Date.now()): string {
  const s = Math.round((now - new Date(iso).getTime()) / 1000);
  if (s < 0) return "just now";
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86400)}d ago`;
}

export function label(enumValue: string | null | undefined): string {
  return (enumValue ?? "unknown").toLowerCase().replace(/_/g, " ");
}

/** The MITRE ATT&CK page of a technique id (`T1110.001` → …/techniques/T1110/001/). */
export function attackUrl(technique: string): string {
  return `https://attack.mitre.org/techniques/${technique.replace(".", "/")}/`;
}

export interface ModelScores {
  model?: string;
  predicted_class?: string;
  class_probabilities?: Record<string, number>;
  baseline_score?: number;
}

export function modelScores(model: unknown): ModelScores | null {
  return model && typeof model === "object" ? (model as ModelScores) : null;
}

/** "brute force 92%" from the classifier's answer, or "—". */
export function verdict(model: unknown): string {
  const m = modelScores(model);
  if (!m?.predicted_class) return "—";
  const p = m.class_probabilities?.[m.predicted_class];
  return p === undefined ? m.predicted_class : `${m.predicted_class} ${Math.round(p * 100)}%`;
}
