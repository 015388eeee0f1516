import { describe, expect, it } from "vitest";
import { atLeast, decodeAccessToken, explain, passwordRules } from "./session";
import { attackUrl, verdict } from "./format";
import { featureList } from "./pages/Incident";

function jwt(claims: object): string {
  const b64 = (o: object) => btoa(JSON.stringify(o)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  return `${b64({ alg: "HS256" })}.${b64(claims)}.sig`;
}

describe("session helpers", () => {
  it("reads role, org and expiry from the access token", () => {
    const s = decodeAccessToken(jwt({ sub: "u1", org: "o1", role: "soc_lead", exp: 1_900_000_000 }));
    expect(s).toMatchObject({ userId: "u1", orgId: "o1", role: "SOC_LEAD", expiresAt: 1_900_000_000_000 });
  });

  it("orders roles viewer < analyst < soc_lead < admin", () => {
    expect(atLeast("ANALYST", "ANALYST")).toBe(true);
    expect(atLeast("VIEWER", "ANALYST")).toBe(false);
    expect(atLeast("ADMIN", "SOC_LEAD")).toBe(true);
    expect(atLeast(undefined, "VIEWER")).toBe(false);
  });

  it("shows the password policy as the user types", () => {
    expect(passwordRules("short").filter((r) => r.ok).map((r) => r.label)).toEqual(["A lower-case letter"]);
    expect(passwordRules("Long-enough-1").every((r) => r.ok)).toBe(true);
  });

  it("keeps the server's message and explains lockout and rate limits", () => {
    expect(explain(401, "Invalid email or password")).toBe("Invalid email or password");
    expect(explain(429, "Too many requests; slow down")).toMatch(/wait a minute/);
    expect(explain(403, "Account locked until 12:00")).toMatch(/15 minutes/);
    expect(explain(500, undefined)).toBe("Request failed (HTTP 500)");
  });
});

describe("incident formatting", () => {
  it("links ATT&CK sub-techniques to their MITRE pages", () => {
    expect(attackUrl("T1110.001")).toBe("https://attack.mitre.org/techniques/T1110/001/");
    expect(attackUrl("T1046")).toBe("https://attack.mitre.org/techniques/T1046/");
  });

  it("names the classifier's verdict with its probability", () => {
    expect(verdict({ predicted_class: "brute_force", class_probabilities: { brute_force: 0.918 } })).toBe("brute_force 92%");
    expect(verdict(null)).toBe("—");
  });

  it("lists the detector's features whichever shape they come in", () => {
    expect(featureList([{ name: "failed_logins_60s", value: 35 }])).toEqual([["failed_logins_60s", 35]]);
    expect(featureList({ a: 1 })).toEqual([["a", 1]]);
    expect(featureList(null)).toEqual([]);
  });
});
