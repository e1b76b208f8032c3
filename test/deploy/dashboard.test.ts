/** The Grafana dashboard may only query metrics kata-monitor serves. */
import {
  DAEMON_METRICS,
  dashboardQueries,
  loadDashboard,
  metricNames,
  substituteVariables,
} from './deploy-helpers';

describe('metricNames (PromQL selector extraction)', () => {
  it('finds selectors, not functions, labels, keywords, strings or durations', () => {
    expect(
      metricNames(
        'histogram_quantile(0.99, sum by (le, instance) (rate(a_bucket{job=~"x|y", item="load1"}[$__rate_interval]))) / on (instance) group_left b offset 5m or vector(0) and c > 1e3',
      ).sort(),
    ).toEqual(['a_bucket', 'b', 'c']);
  });
});

describe('Grafana dashboard', () => {
  const dash = loadDashboard();
  const queries = dashboardQueries(dash);

  it('has an id, a datasource variable and panels with queries', () => {
    expect(dash.uid).toBe('kata-monitor');
    expect(dash.templating.list.map(v => v.name)).toEqual(['datasource', 'instance', 'namespace']);
    expect(queries.length).toBeGreaterThan(10);
    for (const q of queries) expect(q.expr.trim()).not.toBe('');
  });

  it('queries only metric names kata-monitor serves', () => {
    const used = new Set<string>();
    for (const q of queries) {
      for (const name of metricNames(substituteVariables(q.expr))) {
        expect({ panel: q.panel, metric: name, served: DAEMON_METRICS.includes(name) }).toEqual({
          panel: q.panel,
          metric: name,
          served: true,
        });
        used.add(name);
      }
    }
    // The headline families are all on the dashboard.
    for (const m of [
      'kata_guest_load',
      'kata_monitor_sandbox_up',
      'kata_monitor_pod_overhead_memory_bytes',
      'kata_monitor_agent_up',
    ]) {
      expect(used).toContain(m);
    }
  });

  it('template variable queries use served metrics too', () => {
    for (const v of dash.templating.list.filter(x => x.type === 'query')) {
      const m = /label_values\(([A-Za-z_:][A-Za-z0-9_:]*)/.exec(v.definition ?? '');
      expect(DAEMON_METRICS).toContain(m?.[1]);
    }
  });
});
