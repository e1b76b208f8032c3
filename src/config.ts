/**
 * Command line → frozen Config. Pure: no fs, no process access; main.ts passes argv in and acts on the result.
 *
 * Flags are accepted in Go `flag` form (`-flag value`, `-flag=value`) and GNU form (`--flag value`,
 * `--flag=value`), as upstream kata-monitor accepts both. Boolean flags follow Go: `-flag` means true and a
 * value must be attached with `=` (`-flag=false`); the next argument is never consumed by a boolean.
 */
import { KataMonitorError } from './errors';
import { LOG_LEVELS, type LogLevel } from './log';
import type { Runtime } from './types';
import { parseCriEndpoint, type CriEndpoint } from './cri/cri-endpoint';

export class ConfigError extends KataMonitorError {
  /** The flag the problem is about (without dashes), when there is one. */
  readonly flag?: string;
  constructor(message: string, flag?: string) {
    super('CONFIG_INVALID', message);
    this.name = 'ConfigError';
    if (flag !== undefined) this.flag = flag;
  }
}

export type AgentMetricsMode = 'fallback' | 'always' | 'never';

export interface SandboxRoot {
  readonly path: string;
  readonly runtime: Runtime;
}

export interface Config {
  /** What the command line asks for: run the daemon, print usage, print the version. */
  readonly action: 'run' | 'help' | 'version';
  /** As given, e.g. `127.0.0.1:8090`. */
  readonly listenAddress: string;
  /** Host part ('' = all interfaces, as Go's `:8090`). */
  readonly listenHost: string;
  readonly listenPort: number;
  /** The CRI endpoint given on the command line; undefined = probe the well-known sockets. */
  readonly runtimeEndpoint?: CriEndpoint;
  readonly logLevel: LogLevel;
  /** Watched in order; a sandbox id present under two roots belongs to the first (the Go root by default). */
  readonly sandboxRoots: readonly SandboxRoot[];
  /** Per-request deadline for shim calls, milliseconds. */
  readonly shimTimeoutMs: number;
  /** Largest shim response body accepted, bytes. */
  readonly shimMaxBytes: number;
  /** Most shims scraped at the same time. */
  readonly scrapeConcurrency: number;
  /** Scrape runtime-rs shims whose hypervisor is known to abort on /metrics (reference §1.6.3). */
  readonly scrapeUnsafeShims: boolean;
  readonly agentMetrics: AgentMetricsMode;
  readonly collectContainerStats: boolean;
  readonly collectHost: boolean;
  /** Serve the /debug/* proxy to the shims (upstream always does; off hides it from scanners and users). */
  readonly enableDebug: boolean;
  /**
   * Leave out the daemon's own Node runtime and process families (`kata_monitor_nodejs_*`,
   * `kata_monitor_process_*`): node_exporter's flag of the same name. Off by default (upstream exports its own
   * `go_*`/`process_*`); on, the daemon also stops the 10 ms event-loop delay timer behind them.
   */
  readonly disableExporterMetrics: boolean;
  /** Run the process with the small-heap profile (heap-tuning.ts, malloc-tuning.ts); only `run()` applies it. */
  readonly smallHeap: boolean;
  readonly procfsPath: string;
  readonly sysfsPath: string;
  readonly runPath: string;
  /** Non-fatal remarks to log once the logger exists (e.g. a deprecated endpoint form). */
  readonly warnings: readonly string[];
}

type Kind = 'string' | 'bool';

interface FlagSpec {
  name: string;
  kind: Kind;
  /** Shown in usage: accepted values and default. */
  help: string;
  def?: string;
}

/** Every flag, in usage order. Defaults are strings parsed by the same code as user values. */
export const FLAGS: readonly FlagSpec[] = [
  { name: 'listen-address', kind: 'string', def: '127.0.0.1:8090', help: 'HOST:PORT to serve HTTP on' },
  {
    name: 'runtime-endpoint',
    kind: 'string',
    help: 'CRI socket: unix:///path, unix:/path, /path (deprecated) or tcp://host:port (default: probe the well-known sockets)',
  },
  { name: 'log-level', kind: 'string', def: 'info', help: `one of ${LOG_LEVELS.join('|')}` },
  {
    name: 'sandbox-roots',
    kind: 'string',
    def: '/run/vc/sbs,/run/kata',
    help: 'comma-separated sandbox roots; an entry may be go:PATH or rs:PATH, else a root ending in /kata is runtime-rs',
  },
  {
    name: 'shim-timeout',
    kind: 'string',
    def: '3s',
    help: 'deadline of a shim request, Go duration (500ms, 3s, 1m)',
  },
  {
    name: 'shim-max-body',
    kind: 'string',
    def: '64MiB',
    help: 'largest shim response, bytes with optional KiB/MiB/GiB',
  },
  { name: 'scrape-concurrency', kind: 'string', def: '32', help: 'shims scraped at the same time (1-10000)' },
  {
    name: 'scrape-unsafe-shims',
    kind: 'bool',
    def: 'false',
    help: 'also scrape runtime-rs shims that may abort on /metrics',
  },
  {
    name: 'agent-metrics',
    kind: 'string',
    def: 'fallback',
    help: 'fallback|always|never: ask the agent directly',
  },
  {
    name: 'collect-container-stats',
    kind: 'bool',
    def: 'true',
    help: 'collect per-container stats from the agent',
  },
  {
    name: 'collect-host',
    kind: 'bool',
    def: 'true',
    help: 'collect host-side process metrics of each sandbox',
  },
  {
    name: 'web.enable-debug',
    kind: 'bool',
    def: 'true',
    help: 'serve /debug/vars and /debug/pprof/* from the shims (false: 404, not listed)',
  },
  {
    name: 'web.disable-exporter-metrics',
    kind: 'bool',
    def: 'false',
    help: "leave out the daemon's own Node runtime and process families (kata_monitor_nodejs_*, kata_monitor_process_*)",
  },
  {
    name: 'small-heap',
    kind: 'bool',
    def: 'true',
    help: 'keep the V8 and C heaps small: less memory for more CPU (docs/performance.md)',
  },
  { name: 'path.procfs', kind: 'string', def: '/proc', help: 'procfs mount point' },
  { name: 'path.sysfs', kind: 'string', def: '/sys', help: 'sysfs mount point' },
  { name: 'path.run', kind: 'string', def: '/run', help: 'host /run directory' },
  { name: 'help', kind: 'bool', help: 'print this help' },
  { name: 'version', kind: 'bool', help: 'print the version' },
];

const BY_NAME = new Map(FLAGS.map(f => [f.name, f]));

/** The usage text (flags table), printed after a config error and for --help. */
export function usageText(): string {
  const lines = [
    'Usage: kata-monitor [flags]',
    '',
    'Flags (also accepted as -flag; values as --flag VALUE or --flag=VALUE):',
  ];
  for (const f of FLAGS) {
    const head = f.kind === 'bool' ? `--${f.name}[=true|false]` : `--${f.name} VALUE`;
    lines.push(`  ${head}`);
    lines.push(`        ${f.help}${f.def !== undefined ? ` (default ${f.def})` : ''}`);
  }
  lines.push('', 'kata-monitor version   print the version (same as --version)');
  return lines.join('\n') + '\n';
}

/** Go `strconv.ParseBool`. */
export function parseBool(value: string, flag: string): boolean {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(value)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(value)) return false;
  throw new ConfigError(`invalid value "${value}" for flag -${flag}: want true or false`, flag);
}

const DURATION_UNITS_MS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  μs: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/** Go `time.ParseDuration` (`1m30s`, `1.5s`, `500ms`) → milliseconds. Returns undefined when malformed. */
export function parseGoDuration(text: string): number | undefined {
  if (text === '0') return 0;
  const re = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/y;
  let pos = 0;
  let total = 0;
  if (text.length === 0) return undefined;
  while (pos < text.length) {
    re.lastIndex = pos;
    const m = re.exec(text);
    if (!m) return undefined;
    total += Number(m[1]) * (DURATION_UNITS_MS[m[2] as string] as number);
    pos = re.lastIndex;
  }
  return total;
}

const BYTE_UNITS: Record<string, number> = { '': 1, B: 1, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3 };

/** `1048576`, `512KiB`, `64MiB`, `1GiB` → bytes. Returns undefined when malformed. */
export function parseByteSize(text: string): number | undefined {
  const m = /^(\d+)(|B|KiB|MiB|GiB)$/.exec(text);
  if (!m) return undefined;
  return Number(m[1]) * (BYTE_UNITS[m[2] as string] as number);
}

/** `go:PATH`, `rs:PATH` or PATH (runtime-rs when it ends in `/kata`). */
export function parseSandboxRoots(text: string): SandboxRoot[] {
  const roots: SandboxRoot[] = [];
  for (const raw of text.split(',')) {
    const entry = raw.trim();
    if (!entry) continue;
    let runtime: Runtime | undefined;
    let p = entry;
    const m = /^(go|rs):(.*)$/.exec(entry);
    if (m) {
      runtime = m[1] as Runtime;
      p = m[2] as string;
    }
    if (!p.startsWith('/')) {
      throw new ConfigError(
        `invalid value "${text}" for flag -sandbox-roots: "${entry}" is not an absolute path (want [go:|rs:]/PATH,...)`,
        'sandbox-roots',
      );
    }
    p = p.length > 1 ? p.replace(/\/+$/, '') : p;
    runtime ??= /\/kata$/.test(p) ? 'rs' : 'go';
    if (roots.some(r => r.path === p)) continue;
    roots.push({ path: p, runtime });
  }
  if (roots.length === 0) {
    throw new ConfigError(
      `invalid value "${text}" for flag -sandbox-roots: want at least one path`,
      'sandbox-roots',
    );
  }
  return roots;
}

/** `host:port`, `:port`, `[v6]:port` → parts. */
export function parseListenAddress(text: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(text);
  const port = m ? Number(m[3]) : NaN;
  if (!m || !(port >= 0 && port <= 65535)) {
    throw new ConfigError(
      `invalid value "${text}" for flag -listen-address: want HOST:PORT (e.g. 127.0.0.1:8090, :8090, [::1]:8090)`,
      'listen-address',
    );
  }
  return { host: m[1] ?? m[2] ?? '', port };
}

interface Raw {
  values: Map<string, string>;
  action: Config['action'];
}

/** Split argv into flag values (last one wins, as with Go's flag package). */
function scan(argv: readonly string[]): Raw {
  const values = new Map<string, string>();
  if (argv.length === 1 && argv[0] === 'version') return { values, action: 'version' };
  let action: Config['action'] = 'run';
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '--') {
      if (i + 1 < argv.length)
        throw new ConfigError(`unexpected argument "${argv[i + 1]}": kata-monitor takes only flags`);
      break;
    }
    const m = /^--?([^=]+)(?:=([\s\S]*))?$/.exec(arg);
    if (!m || arg === '-') {
      throw new ConfigError(`unexpected argument "${arg}": kata-monitor takes only flags`);
    }
    const name = m[1] as string;
    let value = m[2];
    if (name === 'h') {
      action = 'help';
      continue;
    }
    const spec = BY_NAME.get(name);
    if (!spec) throw new ConfigError(`flag provided but not defined: -${name}`, name);
    if (spec.kind === 'bool') {
      value ??= 'true';
      const b = parseBool(value, name);
      if (name === 'help') {
        if (b) action = 'help';
        continue;
      }
      if (name === 'version') {
        if (b && action !== 'help') action = 'version';
        continue;
      }
    } else if (value === undefined) {
      const next = argv[i + 1];
      if (next === undefined) throw new ConfigError(`flag needs an argument: -${name} (${spec.help})`, name);
      value = next;
      i++;
    }
    values.set(name, value);
  }
  return { values, action };
}

function oneOf<T extends string>(value: string, flag: string, allowed: readonly T[]): T {
  if ((allowed as readonly string[]).includes(value)) return value as T;
  throw new ConfigError(`invalid value "${value}" for flag -${flag}: want one of ${allowed.join('|')}`, flag);
}

/**
 * Parse the command line. Throws ConfigError (code CONFIG_INVALID) naming the flag and what it accepts.
 * `env` is accepted for symmetry with main's call; no flag currently reads the environment.
 */
export function parseArgs(
  argv: readonly string[],
  _env: Readonly<Record<string, string | undefined>> = {},
): Config {
  const raw = scan(argv);
  const get = (name: string): string => raw.values.get(name) ?? BY_NAME.get(name)?.def ?? '';
  const warnings: string[] = [];

  const listenAddress = get('listen-address');
  const listen = parseListenAddress(listenAddress);

  let runtimeEndpoint: CriEndpoint | undefined;
  const ep = raw.values.get('runtime-endpoint');
  if (ep !== undefined) {
    const parsed = parseCriEndpoint(ep);
    if (!parsed.ok) {
      throw new ConfigError(
        `invalid value "${ep}" for flag -runtime-endpoint: ${parsed.error}`,
        'runtime-endpoint',
      );
    }
    runtimeEndpoint = parsed.endpoint;
    if (parsed.endpoint.deprecated) {
      warnings.push(
        `runtime-endpoint "${ep}" has no scheme; using ${parsed.endpoint.display}. Write unix://${ep} instead (bare paths are deprecated)`,
      );
    }
  }

  const logLevel = oneOf(get('log-level'), 'log-level', LOG_LEVELS);

  const shimTimeoutText = get('shim-timeout');
  const shimTimeoutMs = parseGoDuration(shimTimeoutText);
  if (shimTimeoutMs === undefined || !(shimTimeoutMs >= 1) || shimTimeoutMs > 3_600_000) {
    throw new ConfigError(
      `invalid value "${shimTimeoutText}" for flag -shim-timeout: want a Go duration between 1ms and 1h (e.g. 500ms, 3s, 1m)`,
      'shim-timeout',
    );
  }

  const maxBodyText = get('shim-max-body');
  const shimMaxBytes = parseByteSize(maxBodyText);
  if (shimMaxBytes === undefined || shimMaxBytes < 1024 || shimMaxBytes > 4 * 1024 ** 3) {
    throw new ConfigError(
      `invalid value "${maxBodyText}" for flag -shim-max-body: want bytes between 1KiB and 4GiB, optionally with a KiB/MiB/GiB suffix (e.g. 64MiB)`,
      'shim-max-body',
    );
  }

  const concText = get('scrape-concurrency');
  const scrapeConcurrency = /^\d+$/.test(concText) ? Number(concText) : NaN;
  if (!(scrapeConcurrency >= 1 && scrapeConcurrency <= 10000)) {
    throw new ConfigError(
      `invalid value "${concText}" for flag -scrape-concurrency: want an integer between 1 and 10000`,
      'scrape-concurrency',
    );
  }

  const absolute = (flag: string): string => {
    const v = get(flag);
    if (!v.startsWith('/')) {
      throw new ConfigError(`invalid value "${v}" for flag -${flag}: want an absolute path`, flag);
    }
    return v.length > 1 ? v.replace(/\/+$/, '') : v;
  };

  const config: Config = {
    action: raw.action,
    listenAddress,
    listenHost: listen.host,
    listenPort: listen.port,
    ...(runtimeEndpoint ? { runtimeEndpoint } : {}),
    logLevel,
    sandboxRoots: Object.freeze(parseSandboxRoots(get('sandbox-roots')).map(r => Object.freeze(r))),
    shimTimeoutMs,
    shimMaxBytes,
    scrapeConcurrency,
    scrapeUnsafeShims: parseBool(get('scrape-unsafe-shims'), 'scrape-unsafe-shims'),
    agentMetrics: oneOf(get('agent-metrics'), 'agent-metrics', ['fallback', 'always', 'never'] as const),
    collectContainerStats: parseBool(get('collect-container-stats'), 'collect-container-stats'),
    collectHost: parseBool(get('collect-host'), 'collect-host'),
    enableDebug: parseBool(get('web.enable-debug'), 'web.enable-debug'),
    disableExporterMetrics: parseBool(get('web.disable-exporter-metrics'), 'web.disable-exporter-metrics'),
    smallHeap: parseBool(get('small-heap'), 'small-heap'),
    procfsPath: absolute('path.procfs'),
    sysfsPath: absolute('path.sysfs'),
    runPath: absolute('path.run'),
    warnings: Object.freeze(warnings),
  };
  return Object.freeze(config);
}

/** A JSON-friendly view of the effective config for the announce log record. */
export function describeConfig(c: Config): Record<string, unknown> {
  return {
    listen_address: c.listenAddress,
    runtime_endpoint: c.runtimeEndpoint?.display ?? '(probe)',
    log_level: c.logLevel,
    sandbox_roots: c.sandboxRoots.map(r => `${r.runtime}:${r.path}`),
    shim_timeout_ms: c.shimTimeoutMs,
    shim_max_bytes: c.shimMaxBytes,
    scrape_concurrency: c.scrapeConcurrency,
    scrape_unsafe_shims: c.scrapeUnsafeShims,
    agent_metrics: c.agentMetrics,
    collect_container_stats: c.collectContainerStats,
    collect_host: c.collectHost,
    web_enable_debug: c.enableDebug,
    web_disable_exporter_metrics: c.disableExporterMetrics,
    small_heap: c.smallHeap,
    path_procfs: c.procfsPath,
    path_sysfs: c.sysfsPath,
    path_run: c.runPath,
  };
}
