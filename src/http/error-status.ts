/** The one mapping from error codes to HTTP status (docs/errors.md lists the same table). Pure. */
import type { ErrorCode } from '../errors';

export const HTTP_STATUS_BY_CODE: Readonly<Record<ErrorCode, number>> = {
  CONFIG_INVALID: 500,
  SANDBOX_ID_INVALID: 400,
  SANDBOX_UNKNOWN: 404,
  SHIM_TIMEOUT: 502,
  SHIM_REFUSED: 502,
  SHIM_GONE: 502,
  SHIM_HTTP_STATUS: 502,
  SHIM_TOO_LARGE: 502,
  SHIM_PROTOCOL: 502,
  CRI_UNAVAILABLE: 503,
  CRI_DEADLINE: 503,
  AGENT_UNREACHABLE: 502,
  AGENT_STATUS: 502,
  AGENT_PROTOCOL: 502,
  AGENT_TIMEOUT: 502,
  VSOCK_UNAVAILABLE: 502,
};

export function httpStatusFor(code: ErrorCode | undefined): number {
  return code ? HTTP_STATUS_BY_CODE[code] : 500;
}
