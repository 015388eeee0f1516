import { describe, expect, it } from "vitest";
import { activeFilters, rangeStart, toIncidentFilter, withCellFilter, withoutFilter } from "./filters";

describe("queue filters in the URL", () => {
  it("turns the query string into the API's filter, exclusions included", () => {
    const params = new URLSearchParams("status=OPEN&-severity=LOW&-src=10.0.0.1&-src=10.0.0.2&technique=T1110&range=24h");
    const now = Date.parse("2026-12-01T12:00:00Z");
    expect(toIncidentFilter(params, now)).toEqual({
      status: "OPEN",
      technique: "T1110",
      since: "2026-11-30T12:00:00.000Z",
      exclude: { statuses: [], severities: ["LOW"], categories: [], srcIps: ["10.0.0.1", "10.0.0.2"], detectors: [], techniques: [] },
    });
  });

  it("+ keeps only a value and drops its exclusion; − excludes it and drops the inclusion; paging starts over", () => {
    let p = new URLSearchParams("-src=1.1.1.1&after=abc");
    p = withCellFilter(p, "src", "1.1.1.1", "+");
    expect(p.toString()).toBe("src=1.1.1.1");
    p = withCellFilter(p, "src", "1.1.1.1", "-");
    expect(p.toString()).toBe("-src=1.1.1.1");
    p = withCellFilter(p, "src", "1.1.1.1", "-");
    expect(p.getAll("-src")).toEqual(["1.1.1.1"]);
    p = withCellFilter(p, "severity", "LOW", "-");
    expect(activeFilters(p).map((f) => f.label)).toEqual(["severity ≠ LOW", "src ≠ 1.1.1.1"]);
    expect(withoutFilter(p, "-src", "1.1.1.1").toString()).toBe("-severity=LOW");
  });

  it("'all time' starts at the epoch (the API's own default is the last 24 h)", () => {
    expect(rangeStart(null)).toBe("1970-01-01T00:00:00.000Z");
    expect(rangeStart("all")).toBe("1970-01-01T00:00:00.000Z");
  });
});
