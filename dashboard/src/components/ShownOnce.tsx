import { useState } from "react";

/** A secret the server shows once, with a copy button and, when given, a command that uses it. */
export function ShownOnce({ secret, command }: { secret: string; command?: string }) {
  const [copied, setCopied] = useState<string | null>(null);
  const copy = async (text: string, what: string) => {
    await navigator.clipboard?.writeText(text).catch(() => undefined);
    setCopied(what);
  };
  return (
    <div className="shown-once" role="status">
      <p><strong>Copy it now: it is shown once.</strong> Only its digest is stored.</p>
      <code className="secret">{secret}</code> <button type="button" onClick={() => copy(secret, "key")}>Copy key</button>
      {command && (
        <>
          <pre className="json" tabIndex={0} aria-label="Producer command">{command}</pre>
          <button type="button" onClick={() => copy(command, "command")}>Copy command</button>
        </>
      )}
      {copied && <span> Copied the {copied}.</span>}
    </div>
  );
}
