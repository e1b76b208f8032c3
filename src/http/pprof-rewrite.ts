/**
 * The Go pprof index links to its profiles relatively (`<a href='allocs?debug=1'>`). Through the proxy
 * those links must carry the sandbox, so the index is rewritten (same rule as upstream `pprof.go`):
 * `<a href='NAME?K=V'>` → `<a href='NAME?sandbox=ID&K=V'>`. Links without a query (e.g. `profile`) are left
 * alone, as upstream does. Pure.
 */
const LINK_RE = /<a href=(['"])(\w+)\?(\w+=\w+)['"]>/g;

export function rewritePprofIndex(html: string, sandboxId: string): string {
  // The id is validated (isValidSandboxId) before it gets here, so it needs no HTML/URL escaping;
  // encodeURIComponent keeps the function safe on its own.
  const id = encodeURIComponent(sandboxId);
  return html.replace(LINK_RE, (_m, quote: string, name: string, query: string) => {
    return `<a href=${quote}${name}?sandbox=${id}&${query}${quote}>`;
  });
}
