import { Counter, Gauge, Registry } from 'prom-client';
import { parseExposition, sampleLines } from '../../src/metrics/exposition-parse';
import { SandboxSeries } from '../../src/metrics/sandbox-series';
import type { SandboxInfo } from '../../src/types';

function sb(id: string, cri?: SandboxInfo['cri']): Pick<SandboxInfo, 'id' | 'cri'> {
  return cri ? { id, cri } : { id };
}

/** Every sample line of a text, family by family. */
function samples(text: string): string[] {
  const exp = parseExposition(text);
  return [...exp.families.values()].flatMap(f => sampleLines(f, exp));
}

describe('SandboxSeries', () => {
  it('renders up, duration and errors per sandbox, in sandbox id and reason order', () => {
    const s = new SandboxSeries();
    expect(s.render()).toBe('');
    s.record(sb('sb-b', { uid: 'u-b', name: 'pod-b', namespace: 'ns' }), { ok: true, durationMs: 12 });
    s.record(sb('sb-a'), { ok: false, durationMs: 2500, reason: 'timeout' });
    s.record(sb('sb-a'), { ok: false, durationMs: 3, reason: 'refused' });
    s.record(sb('sb-a'), { ok: false, durationMs: 4, reason: 'timeout' });
    const a = 'sandbox_id="sb-a",cri_uid="",cri_name="",cri_namespace=""';
    const b = 'sandbox_id="sb-b",cri_uid="u-b",cri_name="pod-b",cri_namespace="ns"';
    expect(s.render()).toBe(
      "# HELP kata_monitor_sandbox_up Whether the sandbox's shim was scraped successfully in the last aggregated scrape.\n" +
        '# TYPE kata_monitor_sandbox_up gauge\n' +
        `kata_monitor_sandbox_up{${a}} 0\n` +
        `kata_monitor_sandbox_up{${b}} 1\n` +
        "# HELP kata_monitor_sandbox_scrape_duration_seconds How long the last scrape of the sandbox's shim took, in seconds.\n" +
        '# TYPE kata_monitor_sandbox_scrape_duration_seconds gauge\n' +
        `kata_monitor_sandbox_scrape_duration_seconds{${a}} 0.004\n` +
        `kata_monitor_sandbox_scrape_duration_seconds{${b}} 0.012\n` +
        '# HELP kata_monitor_sandbox_scrape_errors_total Failed scrapes of a sandbox, by reason.\n' +
        '# TYPE kata_monitor_sandbox_scrape_errors_total counter\n' +
        'kata_monitor_sandbox_scrape_errors_total{sandbox_id="sb-a",reason="refused"} 1\n' +
        'kata_monitor_sandbox_scrape_errors_total{sandbox_id="sb-a",reason="timeout"} 2\n',
    );
  });

  it('moves a sandbox to its new label set when its CRI metadata arrives, and forgets vanished ones', () => {
    const s = new SandboxSeries();
    s.record(sb('sb-a'), { ok: true, durationMs: 1 });
    s.record(sb('sb-b'), { ok: false, durationMs: 1, reason: 'gone' });
    s.record(sb('sb-a', { uid: 'u', name: 'p"1', namespace: 'n\\s' }), { ok: true, durationMs: 1 });
    let text = s.render();
    expect(text).toContain(
      'kata_monitor_sandbox_up{sandbox_id="sb-a",cri_uid="u",cri_name="p\\"1",cri_namespace="n\\\\s"} 1\n',
    );
    expect(text).not.toContain('kata_monitor_sandbox_up{sandbox_id="sb-a",cri_uid=""');
    expect(text).toContain('reason="gone"');
    s.retain(new Set(['sb-a']));
    expect(s.size).toBe(1);
    text = s.render();
    expect(text).not.toContain('sb-b');
    expect(text).not.toContain('kata_monitor_sandbox_scrape_errors_total');
    expect(() => parseExposition(text)).not.toThrow();
  });

  it('gives the samples prom-client gives for the same records', () => {
    const reg = new Registry();
    const labelNames = ['sandbox_id', 'cri_uid', 'cri_name', 'cri_namespace'] as const;
    const up = new Gauge({ name: 'kata_monitor_sandbox_up', help: 'h', labelNames, registers: [reg] });
    const dur = new Gauge({
      name: 'kata_monitor_sandbox_scrape_duration_seconds',
      help: 'h',
      labelNames,
      registers: [reg],
    });
    const errs = new Counter({
      name: 'kata_monitor_sandbox_scrape_errors_total',
      help: 'h',
      labelNames: ['sandbox_id', 'reason'],
      registers: [reg],
    });
    const s = new SandboxSeries();
    const records: Array<[Pick<SandboxInfo, 'id' | 'cri'>, boolean, number, 'timeout' | 'parse']> = [
      [sb('c3'), false, 1234.5, 'timeout'],
      [sb('a1', { uid: 'x', name: 'caf\u00e9', namespace: 'line\nbreak' }), true, 0.25, 'parse'],
      [sb('b2', { uid: 'y', name: 'n', namespace: 'ns' }), false, 7, 'parse'],
      [sb('c3'), false, 1e-7, 'parse'],
    ];
    for (const [box, ok, ms, reason] of records) {
      const labels = {
        sandbox_id: box.id,
        cri_uid: box.cri?.uid ?? '',
        cri_name: box.cri?.name ?? '',
        cri_namespace: box.cri?.namespace ?? '',
      };
      up.set(labels, ok ? 1 : 0);
      dur.set(labels, ms / 1000);
      if (!ok) errs.inc({ sandbox_id: box.id, reason });
      s.record(box, ok ? { ok, durationMs: ms } : { ok, durationMs: ms, reason });
    }
    return reg.metrics().then(text => {
      expect(samples(s.render()).sort()).toEqual(samples(text).sort());
    });
  });
});
