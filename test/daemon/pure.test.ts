import {
  applyAnswer,
  errorDelayMs,
  planQuery,
  unknownDelayMs,
  type PendingState,
} from '../../src/cri/metadata-policy';
import { classifyEntry, isValidSandboxId } from '../../src/discovery/sandbox-id';
import { parsePersistJson, parseStateJson } from '../../src/discovery/sandbox-state';
import { SandboxStore, type StoreEvent } from '../../src/discovery/sandbox-store';
import { readinessProblems, readinessReason } from '../../src/discovery/sandbox-watcher';
import { renderIndexHtml, renderIndexText, renderSandboxesHtml } from '../../src/http/app';
import { MAX_PROFILE_SECONDS, planDebugRequest } from '../../src/http/debug-plan';
import { httpStatusFor } from '../../src/http/error-status';
import { wantsHtml } from '../../src/http/negotiate';
import { rewritePprofIndex } from '../../src/http/pprof-rewrite';
import { hexId } from './fixtures';

describe('sandbox ids', () => {
  it.each(['a', hexId(1), 'pod_1.x-2', 'A'.repeat(128)])('accepts %s', id =>
    expect(isValidSandboxId(id)).toBe(true),
  );
  it.each(['', '..', '.hidden', '-x', '../../etc', 'a/b', '%2e%2e', 'a b', 'A'.repeat(129), 'é'])(
    'rejects %j',
    id => expect(isValidSandboxId(id)).toBe(false),
  );

  it('treats a runtime-rs helper dir as a sandbox only with proof', () => {
    const none = { hasStateJson: false, hasShimSocket: false };
    expect(classifyEntry('rs', 'firecracker', none)).toBe('maybe');
    expect(classifyEntry('rs', 'firecracker', { ...none, hasStateJson: true })).toBe('sandbox');
    expect(classifyEntry('rs', 'mypod', { ...none, hasShimSocket: true })).toBe('sandbox');
    expect(classifyEntry('rs', hexId(7), none)).toBe('sandbox');
    expect(classifyEntry('go', 'firecracker', none)).toBe('sandbox');
    expect(classifyEntry('go', '..', none)).toBe('ignore');
  });
});

describe('on-disk state', () => {
  it('reads persist.json and state.json', () => {
    expect(
      parsePersistJson(
        JSON.stringify({ HypervisorState: { Type: 'clh' }, AgentState: { URL: 'hvsock:///x:1024' } }),
      ),
    ).toEqual({ hypervisor: 'clh', agentUrl: 'hvsock:///x:1024' });
    expect(parsePersistJson('{"Hyperv')).toBeUndefined();
    expect(parseStateJson(JSON.stringify({ hypervisor: { hypervisor_type: 'dragonball' } }))).toEqual({
      hypervisor: 'dragonball',
    });
    expect(parseStateJson('[]')).toBeUndefined();
  });
});

describe('SandboxStore', () => {
  const roots = [
    { path: '/r/kata', runtime: 'rs' as const },
    { path: '/r/vc/sbs', runtime: 'go' as const },
  ];
  it('lists ids sorted, Go entry first for an id under both roots, events once per id', () => {
    const s = new SandboxStore(roots);
    const events: StoreEvent[] = [];
    s.onChange(e => events.push(e));
    s.add('/r/kata', 'b');
    s.add('/r/kata', 'a');
    s.add('/r/vc/sbs', 'b');
    expect(s.ids()).toEqual(['a', 'b']);
    expect(s.get('b')).toMatchObject({ runtime: 'go', dir: '/r/vc/sbs/b' });
    expect(s.countByRuntime()).toEqual({ go: 1, rs: 1 });
    s.setCri('b', { uid: 'u', name: 'n', namespace: 'ns' });
    expect(s.withoutMetadata()).toBe(1);
    s.remove('/r/vc/sbs', 'b');
    expect(s.get('b')).toMatchObject({ runtime: 'rs', cri: { uid: 'u' } });
    s.remove('/r/kata', 'b');
    expect(s.has('b')).toBe(false);
    expect(events).toEqual([
      { type: 'added', id: 'b' },
      { type: 'added', id: 'a' },
      { type: 'labelled', id: 'b' },
      { type: 'removed', id: 'b' },
    ]);
  });
});

describe('CRI query policy', () => {
  const m = (entries: [string, PendingState][]): Map<string, PendingState> => new Map(entries);

  it('backs off unknown sandboxes 1 s doubling to 60 s, CRI errors 1 s to 5 s', () => {
    expect([1, 2, 3, 4, 5, 6, 7, 8, 20].map(unknownDelayMs)).toEqual([
      1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000,
    ]);
    expect([1, 2, 3, 4, 10].map(errorDelayMs)).toEqual([1000, 2000, 4000, 5000, 5000]);
  });

  it('asks PodSandboxStatus for a single new sandbox, ListPodSandbox for several or for retries', () => {
    expect(planQuery(m([]), 0)).toEqual({ kind: 'idle' });
    expect(planQuery(m([['a', { attempts: 0, nextAt: 0 }]]), 0)).toEqual({ kind: 'status', id: 'a' });
    expect(planQuery(m([['a', { attempts: 2, nextAt: 0 }]]), 0)).toEqual({ kind: 'list', ids: ['a'] });
    expect(
      planQuery(
        m([
          ['b', { attempts: 0, nextAt: 0 }],
          ['a', { attempts: 0, nextAt: 0 }],
          ['c', { attempts: 1, nextAt: 500 }],
        ]),
        100,
      ),
    ).toEqual({ kind: 'list', ids: ['a', 'b'] });
    expect(planQuery(m([['c', { attempts: 1, nextAt: 500 }]]), 100)).toEqual({ kind: 'idle', wakeAt: 500 });
    expect(planQuery(m([['a', { attempts: 0, nextAt: 0 }]]), 100, 900)).toEqual({
      kind: 'idle',
      wakeAt: 900,
    });
  });

  it('resolves known ids (even ones not asked about) and backs off the rest', () => {
    const pending = m([
      ['a', { attempts: 0, nextAt: 0 }],
      ['b', { attempts: 3, nextAt: 0 }],
      ['c', { attempts: 1, nextAt: 9999 }],
    ]);
    const r = applyAnswer(pending, ['a', 'b'], new Set(['a', 'c', 'zzz']), 1000);
    expect(r.resolved.sort()).toEqual(['a', 'c']);
    expect([...r.pending]).toEqual([['b', { attempts: 4, nextAt: 1000 + 8000 }]]);
  });

  it('keeps an unknown sandbox to a handful of calls a minute', () => {
    let pending = m([['x', { attempts: 0, nextAt: 0 }]]);
    let calls = 0;
    for (let now = 0; now <= 60_000; now += 100) {
      const plan = planQuery(pending, now);
      if (plan.kind === 'idle') continue;
      calls++;
      pending = applyAnswer(pending, plan.kind === 'status' ? [plan.id] : plan.ids, new Set(), now).pending;
    }
    expect(pending.has('x')).toBe(true);
    expect(calls).toBeGreaterThanOrEqual(5);
    expect(calls).toBeLessThanOrEqual(8);
  });
});

describe('pprof index rewrite', () => {
  it('adds the sandbox to links with a query, leaves others alone', () => {
    const html =
      "<a href='allocs?debug=1'>allocs</a> <a href=\"heap?debug=1\">heap</a> <a href='profile'>profile</a> <a href='goroutine?debug=2'>full</a>";
    expect(rewritePprofIndex(html, 'abc')).toBe(
      "<a href='allocs?sandbox=abc&debug=1'>allocs</a> <a href=\"heap?sandbox=abc&debug=1\">heap</a> <a href='profile'>profile</a> <a href='goroutine?sandbox=abc&debug=2'>full</a>",
    );
  });
});

describe('debug request plan', () => {
  it('gives profile and trace a deadline from seconds, capped', () => {
    expect(planDebugRequest('/debug/pprof/profile', '')).toMatchObject({
      upstreamPath: '/debug/pprof/profile',
      timeoutMs: 40_000,
    });
    expect(planDebugRequest('/debug/pprof/trace', '?sandbox=a&seconds=5')).toMatchObject({
      upstreamPath: '/debug/pprof/trace?sandbox=a&seconds=5',
      timeoutMs: 15_000,
    });
    const capped = planDebugRequest('/debug/pprof/profile', '?sandbox=a&seconds=100000');
    expect(capped.upstreamPath).toBe(`/debug/pprof/profile?sandbox=a&seconds=${MAX_PROFILE_SECONDS}`);
    expect(capped.timeoutMs).toBe(MAX_PROFILE_SECONDS * 1000 + 10_000);
    expect(planDebugRequest('/debug/pprof/heap', '?sandbox=a')).toMatchObject({
      timeoutMs: 10_000,
      isIndex: false,
    });
    expect(planDebugRequest('/debug/pprof', '?sandbox=a')).toMatchObject({
      upstreamPath: '/debug/pprof/?sandbox=a',
      isIndex: true,
    });
  });
});

describe('negotiation, index, errors', () => {
  it('detects HTML requests', () => {
    expect(wantsHtml('text/html,application/xhtml+xml;q=0.9')).toBe(true);
    expect(wantsHtml('application/json, text/html;q=0.5')).toBe(true);
    expect(wantsHtml('text/plain')).toBe(false);
    expect(wantsHtml('text/htmlx')).toBe(false);
    expect(wantsHtml(undefined)).toBe(false);
  });

  it('renders the index like upstream', () => {
    const eps = [
      { path: '/metrics', description: 'Get metrics from sandboxes.' },
      { path: '/debug/pprof/cmdline', description: 'D.' },
    ];
    expect(renderIndexText(eps)).toBe(
      'Available HTTP endpoints:\n/metrics               : Get metrics from sandboxes.\n/debug/pprof/cmdline   : D.\n',
    );
    expect(renderIndexHtml(eps)).toBe(
      "<h1>Available HTTP endpoints:</h1>\n<ul><li><b><a href='/metrics'>/metrics</a></b>: Get metrics from sandboxes.\n</li><li><b>/debug/pprof/cmdline</b>: D.\n</li></ul>",
    );
    expect(renderSandboxesHtml(['x'])).toBe(
      "<h1>Sandbox list</h1>\n<ul>\n<li>x: <a href='/debug/pprof/?sandbox=x'>pprof</a>, <a href='/metrics?sandbox=x'>metrics</a>, <a href='/agent-url?sandbox=x'>agent-url</a></li>\n</ul>\n",
    );
  });

  it('maps codes to HTTP status and roots to readiness reasons', () => {
    expect(httpStatusFor('SANDBOX_ID_INVALID')).toBe(400);
    expect(httpStatusFor('SANDBOX_UNKNOWN')).toBe(404);
    expect(httpStatusFor('SHIM_TIMEOUT')).toBe(502);
    expect(httpStatusFor(undefined)).toBe(500);
    expect(readinessReason({ path: '/run/kata', runtime: 'rs', state: 'missing' })).toBe(
      'sandbox_root_missing:/run/kata',
    );
    expect(readinessReason({ path: '/x', runtime: 'go', state: 'unreadable' })).toBe(
      'sandbox_root_unreadable:/x',
    );
    expect(readinessReason({ path: '/x', runtime: 'go', state: 'watching' })).toBeUndefined();
  });

  it('counts a missing root against readiness only when no root is watched', () => {
    const watching = { path: '/run/vc/sbs', runtime: 'go' as const, state: 'watching' as const };
    const missing = { path: '/run/kata', runtime: 'rs' as const, state: 'missing' as const };
    const unreadable = { path: '/x', runtime: 'go' as const, state: 'unreadable' as const };
    expect(readinessProblems([watching, missing])).toEqual([]);
    expect(readinessProblems([{ ...watching, state: 'missing' }, missing])).toEqual([
      'sandbox_root_missing:/run/vc/sbs',
      'sandbox_root_missing:/run/kata',
    ]);
    expect(readinessProblems([watching, unreadable])).toEqual(['sandbox_root_unreadable:/x']);
  });
});
