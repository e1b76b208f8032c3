/** Content negotiation helpers. Pure. */

/**
 * Whether the client asked for HTML: a comma-separated `Accept` token equal to `text/html` (parameters and
 * surrounding spaces ignored; upstream requires the exact token without spaces, which browsers send).
 */
export function wantsHtml(accept: string | undefined): boolean {
  if (!accept) return false;
  return accept.split(',').some(tok => tok.split(';')[0]?.trim().toLowerCase() === 'text/html');
}
