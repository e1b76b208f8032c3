/**
 * Errors of the host collector's pure parsers. Stable codes (listed in docs/host-metrics.md):
 * - `HOST_PARSE_TRUNCATED`: the text ends before a required field.
 * - `HOST_PARSE_INVALID`: a required field is there but is not what it should be (not a number, bad JSON...).
 * The collector never lets one escape: it turns it into `kata_monitor_host_read_errors_total{reason="parse"}`.
 */
export type HostParseErrorCode = 'HOST_PARSE_TRUNCATED' | 'HOST_PARSE_INVALID';

export class HostParseError extends Error {
  readonly code: HostParseErrorCode;
  /** Which kind of file was parsed (`stat`, `status`, `io`, `cpu.stat`, `persist.json`, ...). */
  readonly file: string;
  constructor(code: HostParseErrorCode, file: string, message: string) {
    super(`${file}: ${message}`);
    this.code = code;
    this.file = file;
    this.name = 'HostParseError';
  }
}

export function isHostParseError(err: unknown): err is HostParseError {
  return err instanceof HostParseError;
}
