/**
 * Error base with stable codes. Code that branches checks `err.code`, never the message.
 * Every code is listed in docs/errors.md.
 */
export type ErrorCode =
  | 'CONFIG_INVALID'
  | 'SHIM_TIMEOUT'
  | 'SHIM_REFUSED'
  | 'SHIM_GONE'
  | 'SHIM_HTTP_STATUS'
  | 'SHIM_TOO_LARGE'
  | 'SHIM_PROTOCOL'
  | 'SANDBOX_UNKNOWN'
  | 'SANDBOX_ID_INVALID'
  | 'CRI_UNAVAILABLE'
  | 'CRI_DEADLINE'
  | 'AGENT_UNREACHABLE'
  | 'AGENT_STATUS'
  | 'AGENT_PROTOCOL'
  | 'AGENT_TIMEOUT'
  | 'VSOCK_UNAVAILABLE';

export class KataMonitorError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = 'KataMonitorError';
  }
}

export function isKataMonitorError(err: unknown): err is KataMonitorError {
  return err instanceof KataMonitorError;
}

/** A readable message from anything thrown. */
export function getErrorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

/** The errno-style code of a Node system error (`ENOENT`, `ECONNREFUSED`, ...), if any. */
export function errnoCode(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err) {
    const code = (err as { code: unknown }).code;
    return typeof code === 'string' ? code : undefined;
  }
  return undefined;
}
