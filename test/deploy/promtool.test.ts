/**
 * The rules, their unit tests, the example scrape config and the dashboard's PromQL, checked by
 * the real promtool (Debian package `prometheus`).
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import * as yaml from 'js-yaml';
import { findBinary, rmrf, tmpDir } from '../helpers/util';
import {
  DAEMONSET_DIR,
  EXAMPLE_SCRAPE_CONFIG,
  RULES_FILE,
  dashboardQueries,
  substituteVariables,
} from './deploy-helpers';

const run = promisify(execFile);
const promtool = findBinary('promtool');

async function promtoolRun(...args: string[]): Promise<{ code: number; out: string }> {
  if (!promtool) {
    throw new Error(
      "promtool not found on PATH or in /usr/bin: install Debian's `prometheus` package (.ci/run does)",
    );
  }
  try {
    const { stdout, stderr } = await run(promtool, args, { cwd: DAEMONSET_DIR });
    return { code: 0, out: stdout + stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, out: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

interface ScrapeConfig {
  job_name: string;
  kubernetes_sd_configs?: { role: string; namespaces?: { names: string[] } }[];
  file_sd_configs?: unknown[];
  relabel_configs?: Record<string, unknown>[];
}

interface PromConfig {
  rule_files?: string[];
  scrape_configs: ScrapeConfig[];
  [k: string]: unknown;
}

let dir: string;
beforeAll(() => {
  dir = tmpDir('km-promtool-');
});
afterAll(() => rmrf(dir));

describe('promtool', () => {
  it('is installed', () => {
    expect(promtool).toBeDefined();
  });

  it('check rules accepts the rules file', async () => {
    const r = await promtoolRun('check', 'rules', RULES_FILE);
    expect(r).toEqual({ code: 0, out: expect.stringContaining('SUCCESS') });
  });

  it('test rules: every alert fires where it should and stays silent where it should not', async () => {
    const testsFile = path.join(DAEMONSET_DIR, 'rules', 'tests.yml');
    const r = await promtoolRun('test', 'rules', testsFile);
    expect(r).toEqual({ code: 0, out: expect.stringContaining('SUCCESS') });

    // Coverage: each alert of the rules file has a test case expecting it and one expecting silence.
    const rules = yaml.load(fs.readFileSync(RULES_FILE, 'utf8')) as {
      groups: { rules: { alert?: string }[] }[];
    };
    const alerts = rules.groups.flatMap(g => g.rules.map(x => x.alert)).filter((a): a is string => !!a);
    const tests = yaml.load(fs.readFileSync(testsFile, 'utf8')) as {
      tests: { alert_rule_test?: { alertname: string; exp_alerts: unknown[] }[] }[];
    };
    const cases = tests.tests.flatMap(t => t.alert_rule_test ?? []);
    for (const a of alerts) {
      const mine = cases.filter(c => c.alertname === a);
      expect({ alert: a, fires: mine.some(c => c.exp_alerts.length > 0) }).toEqual({ alert: a, fires: true });
      expect({ alert: a, silent: mine.some(c => c.exp_alerts.length === 0) }).toEqual({
        alert: a,
        silent: true,
      });
    }
  });

  it('test rules fails when an alert expectation is wrong (the unit tests can catch a regression)', async () => {
    const rulesCopy = path.join(dir, 'kata-monitor-rules.yml');
    // Break one rule: the sandbox alert now waits 30m, so the 6m expectation must fail.
    const broken = fs
      .readFileSync(RULES_FILE, 'utf8')
      .replace(/(alert: KataSandboxScrapeFailing\n\s+expr: [^\n]+\n\s+for: )5m/, '$130m');
    expect(broken).toContain('for: 30m');
    fs.writeFileSync(rulesCopy, broken);
    fs.copyFileSync(path.join(DAEMONSET_DIR, 'rules', 'tests.yml'), path.join(dir, 'tests.yml'));
    const r = await promtoolRun('test', 'rules', path.join(dir, 'tests.yml'));
    expect(r.code).not.toBe(0);
    expect(r.out).toContain('KataSandboxScrapeFailing');
  });

  it('check config accepts the example scrape config (with kubernetes_sd swapped for file_sd, see below)', async () => {
    // Debian builds Prometheus without Kubernetes service discovery, so its promtool rejects
    // `kubernetes_sd_configs` as an unknown field. Swap that one block for file_sd and let promtool
    // check everything else (globals, relabel rules, the rule files); the SD block itself is
    // checked structurally here and the relabel recipe end to end in test/e2e/prometheus.test.ts.
    const cfg = yaml.load(fs.readFileSync(EXAMPLE_SCRAPE_CONFIG, 'utf8')) as PromConfig;
    const job = cfg.scrape_configs.find(j => j.job_name === 'kata-monitor') as ScrapeConfig;
    expect(job.kubernetes_sd_configs).toEqual([
      expect.objectContaining({ role: 'pod', namespaces: { names: ['kata-system'] } }),
    ]);
    const targets = path.join(dir, 'targets.json');
    fs.writeFileSync(targets, '[]');
    delete job.kubernetes_sd_configs;
    job.file_sd_configs = [{ files: [targets] }];
    cfg.rule_files = (cfg.rule_files ?? []).map(f => path.resolve(path.dirname(EXAMPLE_SCRAPE_CONFIG), f));
    expect(cfg.rule_files).toEqual([RULES_FILE]);
    const file = path.join(dir, 'prometheus.yml');
    fs.writeFileSync(file, yaml.dump(cfg));
    const r = await promtoolRun('check', 'config', file);
    expect(r).toEqual({ code: 0, out: expect.stringContaining('SUCCESS') });
    expect(r.out).toContain('8 rules found');
  });

  it('check config rejects a broken relabel rule (the check has teeth)', async () => {
    const cfg = yaml.load(fs.readFileSync(EXAMPLE_SCRAPE_CONFIG, 'utf8')) as PromConfig;
    const job = cfg.scrape_configs[0] as ScrapeConfig;
    delete job.kubernetes_sd_configs;
    delete cfg.rule_files;
    job.relabel_configs = [
      ...(job.relabel_configs ?? []),
      { action: 'replace', regex: '(', target_label: 'x' },
    ];
    const file = path.join(dir, 'broken.yml');
    fs.writeFileSync(file, yaml.dump(cfg));
    const r = await promtoolRun('check', 'config', file);
    expect(r.code).not.toBe(0);
  });

  it('every dashboard query is valid PromQL (parsed by promtool as recording rules)', async () => {
    const queries = dashboardQueries();
    expect(queries.length).toBeGreaterThan(10);
    const groups = [
      {
        name: 'dashboard',
        rules: queries.map((q, i) => ({ record: `dashboard:query_${i}`, expr: substituteVariables(q.expr) })),
      },
    ];
    const file = path.join(dir, 'dashboard-rules.yml');
    fs.writeFileSync(file, yaml.dump({ groups }));
    const r = await promtoolRun('check', 'rules', file);
    expect(r).toEqual({ code: 0, out: expect.stringContaining(`${queries.length} rules found`) });
  });
});
