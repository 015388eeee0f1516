import { afterEach, describe, expect, it } from "vitest";
import { cleanup, render, screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { MemoryRouter } from "react-router";
import { ForgotPasswordPage, LoginPage, RegisterPage, ResetPasswordPage } from "./pages/Auth";

afterEach(cleanup);

describe("sign-in pages", () => {
  it("the login page has the labelled fields and links to registration", () => {
    render(<MemoryRouter><LoginPage /></MemoryRouter>);
    expect(screen.getByLabelText("Email")).toBeTruthy();
    expect(screen.getByLabelText("Password")).toBeTruthy();
    expect(screen.getByRole("button", { name: "Sign in" })).toBeTruthy();
    expect(screen.getByRole("link", { name: /Create.*organization/ }).getAttribute("href")).toBe("/register");
  });

  it("registration shows the password rules as they are met", async () => {
    render(<MemoryRouter><RegisterPage /></MemoryRouter>);
    for (const name of ["Organization name", "Full name", "Email"]) expect(screen.getByLabelText(name)).toBeTruthy();
    const rules = () => screen.getByRole("list", { name: "Requirements" }).textContent ?? "";
    expect(rules()).toContain("At least 12 characters (not yet)");
    await userEvent.type(screen.getByLabelText("Password"), "Long-enough-1");
    expect(rules()).toContain("At least 12 characters (met)");
    expect(rules()).not.toContain("not yet");
    expect(screen.getByRole("button", { name: "Create organization" })).toBeTruthy();
  });

  it("the login page links to the reset flow, whose pages have their named buttons", () => {
    render(<MemoryRouter><LoginPage /></MemoryRouter>);
    expect(screen.getByRole("link", { name: "Forgot password?" }).getAttribute("href")).toBe("/forgot-password");
    cleanup();
    render(<MemoryRouter><ForgotPasswordPage /></MemoryRouter>);
    expect(screen.getByLabelText("Email")).toBeTruthy();
    expect(screen.getByRole("button", { name: "Send reset link" })).toBeTruthy();
    cleanup();
    render(<MemoryRouter initialEntries={["/reset-password?token=abc"]}><ResetPasswordPage /></MemoryRouter>);
    expect(screen.getByLabelText("New password")).toBeTruthy();
    expect(screen.getByRole("button", { name: "Set new password" })).toBeTruthy();
  });
});
