import {
  ConfigError,
  parseArgs,
  parseByteSize,
  parseGoDuration,
  parseSandboxRoots,
  usageText,
} from '../../src/config';
import { parseCriEndpoint, resolveCriEndpoint, WELL_KNOWN_CRI_SOCKETS } from '../../src/cri/cri-endpoint';

function configError(argv: string[]): ConfigError {
  try {
    parseArgs(argv);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).code).toBe('CONFIG_INVALID');
    return err as ConfigError;
  }
  throw new Error(`parseArgs(${JSON.stringify(argv)}) did not throw`);
}

describe('parseArgs', () => {
  it('has upstream defaults and ours', () => {
    const c = parseArgs([]);
    expect(c.action).toBe('run');
    expect(c.listenAddress).toBe('127.0.0.1:8090');
    expect(c.listenHost).toBe('127.0.0.1');
    expect(c.listenPort).toBe(8090);
    expect(c.runtimeEndpoint).toBeUndefined();
    expect(c.logLevel).toBe('info');
    expect(c.sandboxRoots).toEqual([
      { path: '/run/vc/sbs', runtime: 'go' },
      { path: '/run/kata', runtime: 'rs' },
    ]);
    expect(c.shimTimeoutMs).toBe(3000);
    expect(c.shimMaxBytes).toBe(64 * 1024 * 1024);
    expect(c.scrapeConcurrency).toBe(32);
    expect(c.scrapeUnsafeShims).toBe(false);
    expect(c.agentMetrics).toBe('fallback');
    expect(c.collectContainerStats).toBe(true);
    expect(c.collectHost).toBe(true);
    expect(c.disableExporterMetrics).toBe(false);
    expect([c.procfsPath, c.sysfsPath, c.runPath]).toEqual(['/proc', '/sys', '/run']);
    expect(Object.isFrozen(c)).toBe(true);
  });

  it.each([
    [['-listen-address', '0.0.0.0:9000']],
    [['-listen-address=0.0.0.0:9000']],
    [['--listen-address', '0.0.0.0:9000']],
    [['--listen-address=0.0.0.0:9000']],
  ])('accepts Go and GNU forms %j', argv => {
    expect(parseArgs(argv).listenAddress).toBe('0.0.0.0:9000');
  });

  it('parses listen addresses without host and with IPv6', () => {
    expect(parseArgs(['--listen-address', ':9100'])).toMatchObject({ listenHost: '', listenPort: 9100 });
    expect(parseArgs(['--listen-address', '[::1]:9100'])).toMatchObject({
      listenHost: '::1',
      listenPort: 9100,
    });
  });

  it('follows Go bool syntax: bare flag is true, value only with =', () => {
    expect(parseArgs(['-scrape-unsafe-shims']).scrapeUnsafeShims).toBe(true);
    expect(parseArgs(['--scrape-unsafe-shims=true']).scrapeUnsafeShims).toBe(true);
    expect(parseArgs(['--collect-host=false']).collectHost).toBe(false);
    expect(parseArgs(['--collect-container-stats=0']).collectContainerStats).toBe(false);
    expect(parseArgs(['-web.disable-exporter-metrics']).disableExporterMetrics).toBe(true);
    // the next argument is not a bool value: it is taken as a (bad) positional argument
    expect(configError(['--collect-host', 'false']).message).toMatch(/unexpected argument "false"/);
  });

  it('parses durations, sizes, concurrency, modes and paths', () => {
    const c = parseArgs([
      '--shim-timeout=500ms',
      '--shim-max-body',
      '8MiB',
      '--scrape-concurrency=4',
      '--agent-metrics',
      'always',
      '--log-level=debug',
      '--path.procfs=/host/proc',
      '--path.sysfs',
      '/host/sys/',
      '--path.run=/host/run',
    ]);
    expect(c).toMatchObject({
      shimTimeoutMs: 500,
      shimMaxBytes: 8 * 1024 * 1024,
      scrapeConcurrency: 4,
      agentMetrics: 'always',
      logLevel: 'debug',
      procfsPath: '/host/proc',
      sysfsPath: '/host/sys',
      runPath: '/host/run',
    });
  });

  it('parses runtime endpoints; a bare path works with a deprecation warning', () => {
    expect(parseArgs(['--runtime-endpoint', 'unix:///run/x.sock']).runtimeEndpoint).toMatchObject({
      target: 'unix:///run/x.sock',
      deprecated: false,
    });
    expect(parseArgs(['--runtime-endpoint=unix:/run/x.sock']).runtimeEndpoint?.target).toBe(
      'unix:///run/x.sock',
    );
    const bare = parseArgs(['-runtime-endpoint', '/run/x.sock']);
    expect(bare.runtimeEndpoint).toMatchObject({ target: 'unix:///run/x.sock', deprecated: true });
    expect(bare.warnings.join()).toMatch(/deprecated/);
    expect(parseArgs(['--runtime-endpoint', 'tcp://127.0.0.1:1234']).runtimeEndpoint).toMatchObject({
      target: '127.0.0.1:1234',
      display: 'tcp://127.0.0.1:1234',
    });
  });

  it('recognises version and help', () => {
    expect(parseArgs(['version']).action).toBe('version');
    expect(parseArgs(['--version']).action).toBe('version');
    expect(parseArgs(['-version']).action).toBe('version');
    expect(parseArgs(['-h']).action).toBe('help');
    expect(parseArgs(['--help']).action).toBe('help');
  });

  it.each([
    [['--log-level', 'loud'], 'log-level', /trace\|debug\|info\|warn\|error\|fatal\|panic/],
    [['--shim-timeout', '3'], 'shim-timeout', /Go duration/],
    [['--shim-timeout=0s'], 'shim-timeout', /between 1ms and 1h/],
    [['--shim-max-body', '64MB'], 'shim-max-body', /KiB\/MiB\/GiB/],
    [['--scrape-concurrency', '0'], 'scrape-concurrency', /between 1 and 10000/],
    [['--scrape-concurrency=abc'], 'scrape-concurrency', /integer/],
    [['--agent-metrics', 'sometimes'], 'agent-metrics', /fallback\|always\|never/],
    [['--scrape-unsafe-shims=maybe'], 'scrape-unsafe-shims', /true or false/],
    [['--listen-address', 'localhost'], 'listen-address', /HOST:PORT/],
    [['--listen-address', '1.2.3.4:70000'], 'listen-address', /HOST:PORT/],
    [['--runtime-endpoint', 'http://x'], 'runtime-endpoint', /protocol "http" not supported/],
    [['--runtime-endpoint', 'unix://relative'], 'runtime-endpoint', /absolute/],
    [['--sandbox-roots', 'relative/dir'], 'sandbox-roots', /absolute/],
    [['--path.procfs', 'proc'], 'path.procfs', /absolute path/],
    [['--no-such-flag'], 'no-such-flag', /flag provided but not defined: -no-such-flag/],
    [['--log-level'], 'log-level', /flag needs an argument: -log-level/],
  ])('rejects %j naming the flag', (argv, flag, accepted) => {
    const err = configError(argv);
    expect(err.flag).toBe(flag);
    expect(err.message).toContain(`-${flag}`);
    expect(err.message).toMatch(accepted);
  });

  it('usage lists every flag with its default', () => {
    const u = usageText();
    for (const f of ['listen-address', 'runtime-endpoint', 'sandbox-roots', 'shim-timeout', 'path.run']) {
      expect(u).toContain(`--${f}`);
    }
    expect(u).toContain('(default 127.0.0.1:8090)');
  });
});

describe('value parsers', () => {
  it('parses Go durations', () => {
    expect(parseGoDuration('3s')).toBe(3000);
    expect(parseGoDuration('1m30s')).toBe(90_000);
    expect(parseGoDuration('1.5s')).toBe(1500);
    expect(parseGoDuration('250ms')).toBe(250);
    expect(parseGoDuration('1h')).toBe(3_600_000);
    expect(parseGoDuration('3')).toBeUndefined();
    expect(parseGoDuration('s')).toBeUndefined();
    expect(parseGoDuration('3 s')).toBeUndefined();
  });

  it('parses byte sizes', () => {
    expect(parseByteSize('1024')).toBe(1024);
    expect(parseByteSize('512KiB')).toBe(512 * 1024);
    expect(parseByteSize('1GiB')).toBe(1024 ** 3);
    expect(parseByteSize('1.5MiB')).toBeUndefined();
    expect(parseByteSize('-1')).toBeUndefined();
  });

  it('infers the runtime of sandbox roots and honours prefixes', () => {
    expect(parseSandboxRoots('/a/vc/sbs,/b/kata,rs:/c/x,go:/d/kata,/e/kata/')).toEqual([
      { path: '/a/vc/sbs', runtime: 'go' },
      { path: '/b/kata', runtime: 'rs' },
      { path: '/c/x', runtime: 'rs' },
      { path: '/d/kata', runtime: 'go' },
      { path: '/e/kata', runtime: 'rs' },
    ]);
  });
});

describe('CRI endpoint', () => {
  it('rejects unsupported forms', () => {
    expect(parseCriEndpoint('npipe://x').ok).toBe(false);
    expect(parseCriEndpoint('run/x.sock').ok).toBe(false);
    expect(parseCriEndpoint('tcp://host').ok).toBe(false);
  });

  it('probes the well-known sockets in order, else falls back to containerd', () => {
    const seen: string[] = [];
    const existing = new Set(['/var/run/crio/crio.sock', '/run/k0s/containerd.sock']);
    const r = resolveCriEndpoint(undefined, p => {
      seen.push(p);
      return existing.has(p);
    });
    expect(r).toMatchObject({ source: 'probe', endpoint: { target: 'unix:///run/k0s/containerd.sock' } });
    expect(seen).toEqual(WELL_KNOWN_CRI_SOCKETS.slice(0, 3));
    expect(resolveCriEndpoint(undefined, () => false)).toMatchObject({
      source: 'fallback',
      endpoint: { display: 'unix:///run/containerd/containerd.sock' },
    });
    const given = parseCriEndpoint('unix:///x.sock');
    if (!given.ok) throw new Error('parse');
    expect(resolveCriEndpoint(given.endpoint, () => true)).toMatchObject({ source: 'flag' });
  });
});
