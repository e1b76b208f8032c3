import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  ExpositionParser,
  FLAG_BRACES,
  FLAG_COLLISION,
  FLAG_NEED_COMMA,
  ParseError,
  flagsOf,
  parseExposition,
  sampleLines,
  sampleMetas,
  splitOf,
} from '../../src/metrics/exposition-parse';

const FIXTURES = path.join(__dirname, '..', 'fixtures', 'metrics');

function parseError(text: string): ParseError {
  try {
    parseExposition(text);
  } catch (err) {
    if (err instanceof ParseError) return err;
    throw err;
  }
  throw new Error('expected a ParseError');
}

describe('parseExposition', () => {
  it('reads HELP, TYPE and samples of typed families in body order', () => {
    const exp = parseExposition(
      '# HELP a_total Things.\n# TYPE a_total counter\na_total{x="1"} 3\na_total{x="2"} 4\n' +
        '# TYPE b gauge\nb 1.5\n',
    );
    expect([...exp.families.keys()]).toEqual(['a_total', 'b']);
    const a = exp.families.get('a_total')!;
    expect(a.type).toBe('counter');
    expect(a.help).toBe('Things.');
    expect(sampleLines(a)).toEqual(['a_total{x="1"} 3', 'a_total{x="2"} 4']);
    expect(exp.families.get('b')!.help).toBeUndefined();
    expect(exp.sampleCount).toBe(3);
  });

  it('records where labels are spliced and which lines need a comma', () => {
    const exp = parseExposition('a 1\nb{} 2\nc{x="1"} 3\nd{x="1",} 4\ne {y="2"} 5\n');
    const meta = (n: string): [number, number] => {
      const f = exp.families.get(n)!;
      return [splitOf(sampleMetas(f)[0]!), flagsOf(sampleMetas(f)[0]!)];
    };
    expect(meta('a')).toEqual([1, 0]);
    expect(meta('b')).toEqual([2, FLAG_BRACES]);
    expect(meta('c')).toEqual([7, FLAG_BRACES | FLAG_NEED_COMMA]);
    expect(meta('d')).toEqual([8, FLAG_BRACES]);
    expect(meta('e')).toEqual([8, FLAG_BRACES | FLAG_NEED_COMMA]);
  });

  it('assigns histogram and summary suffix samples to their family', () => {
    const exp = parseExposition(
      '# TYPE h histogram\nh_bucket{le="1"} 1\nh_bucket{le="+Inf"} 2\nh_sum 3\nh_count 2\n' +
        '# TYPE s summary\ns{quantile="0.5"} 1\ns_sum 2\ns_count 3\n',
    );
    expect([...exp.families.keys()]).toEqual(['h', 's']);
    expect(sampleLines(exp.families.get('h')!)).toHaveLength(4);
    expect(sampleLines(exp.families.get('s')!)).toHaveLength(3);
  });

  it('makes a sample without a declared family its own untyped family', () => {
    const exp = parseExposition('# TYPE g gauge\ng 1\nstray{a="b"} 2\ng_sum 4\n');
    expect(exp.families.get('stray')!.type).toBe('untyped');
    // `g_sum` is not a suffix of a gauge: its own family
    expect(exp.families.get('g_sum')!.type).toBe('untyped');
  });

  it('accepts comments, blank lines, timestamps, special floats, escapes, CRLF and blanks', () => {
    const exp = parseExposition(
      '# just a comment\n\n#\n   \n# HELP x Help with \\\\ and \\n.\n# TYPE x gauge\n' +
        'x{a="q\\"uote",b="back\\\\slash",c="new\\nline"} +Inf 1700000000000\n' +
        'x{a="2"} -Inf\nx{a="3"} NaN\nx{a="4"} 1e-3\nx{a="5"} .5\nx{a="6"} 0x1p-2\nx{a="7"} -12 -5\r\n' +
        '\tx { a = "8" , } 8\n',
    );
    const x = exp.families.get('x')!;
    expect(x.help).toBe('Help with \\\\ and \\n.');
    expect(sampleLines(x)).toHaveLength(8);
    expect(sampleLines(x)[6]).toBe('x{a="7"} -12 -5');
    expect(sampleLines(x)[7]).toBe('x { a = "8" , } 8');
  });

  it('merges runtime-rs concatenated expositions (families not globally sorted, repeated identical TYPE)', () => {
    const text = fs.readFileSync(path.join(FIXTURES, 'rs-shim.prom'), 'utf8');
    const exp = parseExposition(text + '# TYPE kata_shim_fds gauge\nkata_shim_fds 20\n');
    expect(sampleLines(exp.families.get('kata_shim_fds')!)).toEqual(['kata_shim_fds 19', 'kata_shim_fds 20']);
    expect([...exp.families.keys()][0]).toBe('kata_agent_process_cpu_seconds_total');
  });

  it('flags lines that already carry one of our label names', () => {
    const exp = parseExposition(
      'a{sandbox_id="x"} 1\nb{cri_namespace="y",z="1"} 2\nc{sandbox="s",cri="c"} 3\n',
    );
    expect(flagsOf(sampleMetas(exp.families.get('a')!)[0]!) & FLAG_COLLISION).toBe(FLAG_COLLISION);
    expect(flagsOf(sampleMetas(exp.families.get('b')!)[0]!) & FLAG_COLLISION).toBe(FLAG_COLLISION);
    expect(flagsOf(sampleMetas(exp.families.get('c')!)[0]!) & FLAG_COLLISION).toBe(0);
  });

  it('does not let the label-name cache confuse names sharing a prefix', () => {
    const exp = parseExposition(
      'm{sandbox="1"} 1\nm{sandbox_id="2"} 2\nm{sandbox="3",sandbox="4"} 3\n'.slice(0, 36),
    );
    const m = exp.families.get('m')!;
    expect(flagsOf(sampleMetas(m)[0]!) & FLAG_COLLISION).toBe(0);
    expect(flagsOf(sampleMetas(m)[1]!) & FLAG_COLLISION).toBe(FLAG_COLLISION);
    expect(parseError('m{item="1"} 1\nm{item="1",item="2"} 2\n').message).toContain(
      'line 2: duplicate label name',
    );
    expect(parseError('# TYPE h histogram\nh_bucket{le="1"} 1\nh_bucket{lex="1"} 1\n').line).toBe(3);
  });

  it('parses the hand-written Go shim fixture', () => {
    const exp = parseExposition(fs.readFileSync(path.join(FIXTURES, 'go-shim.prom'), 'utf8'));
    expect(exp.families.get('go_gc_duration_seconds')!.type).toBe('summary');
    expect(sampleLines(exp.families.get('kata_shim_rpc_durations_histogram_milliseconds')!)).toHaveLength(12);
    expect(exp.sampleCount).toBe(52);
  });

  it.each([
    ['a{x="1" 2\n', 1, 'expected'],
    ['ok 1\nbad{x=1} 2\n', 2, 'quoted label value'],
    ['ok 1\n\nbad{x="1"}\n', 3, 'missing sample value'],
    ['a 1\nb twelve\n', 2, 'invalid sample value'],
    ['a 1 12.5\n', 1, 'invalid timestamp'],
    ['a 1 12 extra\n', 1, 'after timestamp'],
    ['a{x="\\q"} 1\n', 1, 'escape'],
    ['a{x="1",x="2"} 1\n', 1, 'duplicate label name x'],
    ['a{__name__="b"} 1\n', 1, 'reserved'],
    ['# TYPE a gauge\n# TYPE a counter\na 1\n', 2, 'second TYPE'],
    ['a 1\n# TYPE a gauge\n', 2, 'TYPE reported after samples'],
    ['# TYPE a gaugehistogram\n', 1, 'unknown metric type'],
    ['# HELP a one\n# HELP a two\n', 2, 'second HELP'],
    ['# HELP a bad \\x escape\n', 1, 'escape'],
    ['# TYPE h histogram\nh_bucket{x="1"} 1\n', 2, 'without le'],
    ['# TYPE h histogram\nh 1\n', 2, 'without _bucket'],
    ['# TYPE s summary\ns 1\n', 2, 'without quantile'],
    ['1abc 2\n', 1, 'invalid metric name'],
    ['a{x="unterminated} 1\n', 1, 'unterminated'],
    ['a{1x="1"} 1\n', 1, 'invalid label name'],
  ])('rejects %j at line %d', (text, line, words) => {
    const err = parseError(text);
    expect(err.line).toBe(line);
    expect(err.message).toContain(`line ${line}`);
    expect(err.message).toContain(words);
  });

  it('parses incrementally with the same result', () => {
    const text = fs.readFileSync(path.join(FIXTURES, 'go-shim.prom'), 'utf8');
    const p = new ExpositionParser(Buffer.from(text));
    let rounds = 0;
    while (!p.parseSome(7)) rounds++;
    expect(rounds).toBeGreaterThan(5);
    expect(p.result()).toEqual(parseExposition(text));
  });
});
