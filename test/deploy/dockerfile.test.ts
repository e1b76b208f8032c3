/**
 * The Dockerfile cannot be built here (no Docker engine), so check what can go wrong without one:
 * stages, base images, the commands (the same ones CI runs), entrypoint, port, and that every
 * COPY source exists (and is not excluded by .dockerignore).
 */
import { MMAP_THRESHOLD_BYTES, MMAP_THRESHOLD_ENV } from '../../src/malloc-tuning';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { REPO } from './deploy-helpers';

interface Instruction {
  op: string;
  args: string;
  line: number;
}

/** Dockerfile → instructions (comments dropped, `\` continuations joined). */
function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const start = i;
    let line = (lines[i] as string).trim();
    if (line === '' || line.startsWith('#')) continue;
    while (line.endsWith('\\') && i + 1 < lines.length) {
      i++;
      const next = (lines[i] as string).trim();
      line = line.slice(0, -1).trimEnd() + (next.startsWith('#') ? '' : ' ' + next);
    }
    const m = /^(\S+)\s*(.*)$/.exec(line) as RegExpExecArray;
    out.push({ op: (m[1] as string).toUpperCase(), args: (m[2] as string).trim(), line: start + 1 });
  }
  return out;
}

interface Stage {
  name: string;
  from: string;
  instructions: Instruction[];
}

function stagesOf(ins: Instruction[]): { args: Map<string, string>; stages: Stage[] } {
  const args = new Map<string, string>();
  const stages: Stage[] = [];
  for (const i of ins) {
    if (i.op === 'FROM') {
      const m = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(i.args);
      if (!m) throw new Error(`line ${i.line}: cannot parse FROM ${i.args}`);
      const from = (m[1] as string).replace(/\$\{?(\w+)\}?/g, (_s, v: string) => args.get(v) ?? `<${v}?>`);
      stages.push({ name: m[2] ?? String(stages.length), from, instructions: [] });
    } else if (stages.length === 0) {
      if (i.op !== 'ARG') throw new Error(`line ${i.line}: ${i.op} before the first FROM`);
      const [k, v] = i.args.split('=');
      args.set(k as string, v ?? '');
    } else {
      (stages[stages.length - 1] as Stage).instructions.push(i);
    }
  }
  return { args, stages };
}

/** COPY [--from=x] src... dest → sources and destination. */
function copyParts(args: string): { from?: string; sources: string[]; dest: string } {
  const words = args.split(/\s+/);
  let from: string | undefined;
  while (words[0]?.startsWith('--')) {
    const flag = words.shift() as string;
    const m = /^--from=(.+)$/.exec(flag);
    if (m) from = m[1];
  }
  const dest = words.pop() as string;
  return { ...(from !== undefined ? { from } : {}), sources: words, dest };
}

/** Minimal .dockerignore matcher: the patterns we use (plain names and `*.ext`), anchored at the context root. */
function ignoredBy(patterns: string[], rel: string): boolean {
  const first = rel.split('/')[0] as string;
  return patterns.some(p => {
    if (p.startsWith('*.')) return rel.endsWith(p.slice(1));
    return p === rel || p === first;
  });
}

const text = fs.readFileSync(path.join(REPO, 'Dockerfile'), 'utf8');
const instructions = parseDockerfile(text);
const { stages } = stagesOf(instructions);
const ignore = fs
  .readFileSync(path.join(REPO, '.dockerignore'), 'utf8')
  .split('\n')
  .map(l => l.trim())
  .filter(l => l && !l.startsWith('#'));

describe('Dockerfile', () => {
  it('has a node:20 build stage and a node:20 runtime stage', () => {
    expect(stages.map(s => s.name)).toEqual(['build', 'runtime']);
    for (const s of stages) expect(s.from).toMatch(/^node:20(-|$)/);
    expect(stages[0]?.from).toBe('node:20-bookworm-slim');
  });

  it('builds with the commands CI runs: npm ci (prepare = build), then prunes dev dependencies', () => {
    const runs = (stages[0] as Stage).instructions.filter(i => i.op === 'RUN').map(i => i.args);
    expect(runs[0]).toMatch(/^npm ci\b/);
    expect(runs.some(r => /^npm prune\b.*--omit=dev/.test(r))).toBe(true);
    // npm ci builds dist/ only because `prepare` runs the build: keep that link true.
    const pkg = JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')) as {
      scripts: Record<string, string>;
    };
    expect(pkg.scripts.prepare).toBe('npm run build');
    expect(pkg.scripts.build).toContain('tsconfig.build.json');
    const buildCfg = JSON.parse(fs.readFileSync(path.join(REPO, 'tsconfig.build.json'), 'utf8')) as {
      compilerOptions: { outDir: string };
    };
    expect(buildCfg.compilerOptions.outDir).toBe('dist');
  });

  it('copies into the build stage only files that exist and are not dockerignored', () => {
    const copies = (stages[0] as Stage).instructions.filter(i => i.op === 'COPY' || i.op === 'ADD');
    expect(copies.length).toBeGreaterThan(0);
    const copied: string[] = [];
    for (const c of copies) {
      const { from, sources } = copyParts(c.args);
      expect(from).toBeUndefined();
      for (const s of sources) {
        expect({ source: s, exists: fs.existsSync(path.join(REPO, s)) }).toEqual({ source: s, exists: true });
        expect({ source: s, ignored: ignoredBy(ignore, s) }).toEqual({ source: s, ignored: false });
        copied.push(s);
      }
    }
    // Everything `npm ci` + the build needs.
    for (const needed of [
      'package.json',
      'package-lock.json',
      'tsconfig.json',
      'tsconfig.build.json',
      'src',
      'proto',
      'bin',
      'native',
    ]) {
      expect(copied).toContain(needed);
    }
  });

  it('copies into the runtime stage only what the build stage has: package.json, production node_modules, dist, bin, proto, native', () => {
    const build = stages[0] as Stage;
    const workdir = build.instructions.filter(i => i.op === 'WORKDIR').pop()?.args as string;
    const inBuild = new Set(
      build.instructions
        .filter(i => i.op === 'COPY')
        .flatMap(i => copyParts(i.args).sources)
        .map(s => path.posix.join(workdir, s)),
    );
    // Produced by `npm ci` (node_modules) and the prepare/build script (dist).
    inBuild.add(path.posix.join(workdir, 'node_modules'));
    inBuild.add(path.posix.join(workdir, 'dist'));
    const copies = (stages[1] as Stage).instructions.filter(i => i.op === 'COPY');
    const sources: string[] = [];
    for (const c of copies) {
      const { from, sources: srcs } = copyParts(c.args);
      expect(from).toBe('build');
      for (const s of srcs) {
        expect({ source: s, producedByBuild: inBuild.has(s) }).toEqual({ source: s, producedByBuild: true });
        sources.push(path.posix.relative(workdir, s));
      }
    }
    expect(sources.sort()).toEqual(['bin', 'dist', 'native', 'node_modules', 'package.json', 'proto']);
  });

  it('runs the daemon as root (with the reason), exposes 8090 and enters through bin/kata-monitor', () => {
    const rt = (stages[1] as Stage).instructions;
    const user = rt.filter(i => i.op === 'USER');
    expect(user.map(u => u.args)).toEqual(['root']);
    // The reason sits in the comment block right above USER.
    const above = text
      .split('\n')
      .slice(0, (user[0] as Instruction).line - 1)
      .join('\n');
    expect(above).toMatch(/0600[\s\S]*\/proc/);
    expect(rt.filter(i => i.op === 'EXPOSE').map(i => i.args)).toEqual(['8090']);
    const entry = rt.filter(i => i.op === 'ENTRYPOINT');
    expect(entry).toHaveLength(1);
    const argv = JSON.parse((entry[0] as Instruction).args) as string[];
    expect(argv).toEqual(['node', '/app/bin/kata-monitor']);
    expect(rt.find(i => i.op === 'WORKDIR')?.args).toBe('/app');
    // bin/kata-monitor exists and loads dist/cli.js (which the build emits from src/cli.ts).
    expect(fs.readFileSync(path.join(REPO, 'bin', 'kata-monitor'), 'utf8')).toContain(
      "require('../dist/cli.js')",
    );
  });

  it('sets the C heap half of --small-heap in the environment (the image has no compiler for native/malloc)', () => {
    const env = (stages[1] as Stage).instructions
      .filter(i => i.op === 'ENV')
      .map(i => i.args)
      .join(' ');
    expect(env).toMatch(new RegExp(`(^|\\s)${MMAP_THRESHOLD_ENV}=${MMAP_THRESHOLD_BYTES}(\\s|$)`));
  });

  it('has a HEALTHCHECK on /healthz that needs no shell', () => {
    const hc = (stages[1] as Stage).instructions.filter(i => i.op === 'HEALTHCHECK');
    expect(hc).toHaveLength(1);
    const cmd = /CMD\s+(\[.*\])$/.exec((hc[0] as Instruction).args);
    expect(cmd).not.toBeNull();
    const argv = JSON.parse((cmd as RegExpExecArray)[1] as string) as string[];
    expect(argv[0]).toBe('node');
    expect(argv.join(' ')).toContain('/healthz');
  });
});
