/**
 * A lean decoder of grpc.StatsContainerResponse (pure): reads only what kata-monitor exports per container
 * (CPU total, memory usage/limit, pids, blkio service bytes, network rx/tx) straight off the wire and skips
 * every other field by its wire length (memory_stats.stats and hugetlb maps, per-CPU usage, the other blkio
 * lists, throttling data, unknown fields). Field numbers: kata-protocols.md §3.3, proto/agent/agent.proto.
 *
 * It gives what the protobufjs decoder gives for these fields: a sub-message that appears twice is merged (the
 * later occurrence's fields win, fields it lacks keep their earlier values), repeated entries accumulate, a
 * field with an unexpected wire type is skipped like an unknown one, uint64 becomes a number the way protobufjs'
 * LongBits.toNumber computes it, and a string that is not valid UTF-8 fails the decode.
 */
import { isUtf8 } from 'node:buffer';
import { KataMonitorError } from '../errors';

/** One io_service_bytes_recursive entry (major/minor are not exported, so not read). */
export interface LeanBlkioEntry {
  op: string;
  value: number;
}

export interface LeanNetworkStats {
  name: string;
  rx_bytes: number;
  tx_bytes: number;
}

/** The exported subset of a StatsContainerResponse; a field is undefined when its message was absent. */
export interface LeanContainerStats {
  /** cgroup_stats.cpu_stats.cpu_usage.total_usage (ns), when cpu_usage was present. */
  cpuTotalNs: number | undefined;
  /** cgroup_stats.memory_stats.usage {usage, limit}, when usage was present. */
  memory: { usage: number; limit: number } | undefined;
  /** cgroup_stats.pids_stats.current, when pids_stats was present. */
  pids: number | undefined;
  /** cgroup_stats.blkio_stats.io_service_bytes_recursive (empty when absent). */
  blkioServiceBytes: LeanBlkioEntry[];
  network: LeanNetworkStats[];
}

const WT_VARINT = 0;
const WT_FIXED64 = 1;
const WT_LEN = 2;
const WT_START_GROUP = 3;
const WT_END_GROUP = 4;
const WT_FIXED32 = 5;
const TWO_32 = 4294967296;

function malformed(what: string): never {
  throw new KataMonitorError('AGENT_PROTOCOL', `StatsContainerResponse: ${what}`);
}

/**
 * Cursor over one message's bytes. `pos` moves forward; `end` bounds the current (sub-)message. Methods are
 * small and monomorphic so V8 inlines them.
 */
class Cursor {
  pos: number;
  constructor(
    readonly buf: Buffer,
    start: number,
  ) {
    this.pos = start;
  }

  /** A varint of at most 32 significant bits (tags and lengths), as an unsigned number. */
  u32(end: number): number {
    const buf = this.buf;
    if (this.pos < end && buf[this.pos]! < 0x80) return buf[this.pos++]!;
    let result = 0;
    let shift = 0;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= end) malformed('truncated varint');
      const b = buf[this.pos++]!;
      if (shift < 32) result += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return result % TWO_32;
      shift += 7;
    }
    return malformed('varint too long');
  }

  /** A uint64 varint as a number: (hi >>> 0) * 2^32 + (lo >>> 0), like protobufjs' LongBits.toNumber(true). */
  u64(end: number): number {
    const buf = this.buf;
    if (this.pos < end && buf[this.pos]! < 0x80) return buf[this.pos++]!;
    let lo = 0;
    let hi = 0;
    let shift = 0;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= end) malformed('truncated varint');
      const b = buf[this.pos++]!;
      const bits = b & 0x7f;
      if (shift < 28) lo |= bits << shift;
      else if (shift === 28) {
        lo |= (bits & 0x0f) << 28;
        hi |= bits >>> 4;
      } else hi |= bits << (shift - 32);
      if (b < 0x80) return (hi >>> 0) * TWO_32 + (lo >>> 0);
      shift += 7;
    }
    return malformed('varint too long');
  }

  /** End offset of a length-delimited field starting here (its length is read). */
  sub(end: number): number {
    const len = this.u32(end);
    const e = this.pos + len;
    if (e > end) malformed('length beyond message');
    return e;
  }

  str(end: number): string {
    const e = this.sub(end);
    const s = this.buf.toString('utf8', this.pos, e);
    // U+FFFD marks a replaced invalid sequence (or a real U+FFFD): only then check the bytes strictly.
    if (s.includes('\uFFFD') && !isUtf8(this.buf.subarray(this.pos, e))) malformed('invalid UTF-8 string');
    this.pos = e;
    return s;
  }

  /** Skip one field of wire type `wt` (after its tag). */
  skip(wt: number, end: number, field: number): void {
    switch (wt) {
      case WT_VARINT:
        for (;;) {
          if (this.pos >= end) malformed('truncated varint');
          if (this.buf[this.pos++]! < 0x80) return;
        }
      case WT_FIXED64:
        this.pos += 8;
        break;
      case WT_LEN:
        this.pos = this.sub(end);
        return;
      case WT_START_GROUP:
        for (;;) {
          const tag = this.u32(end);
          const w = tag & 7;
          if (w === WT_END_GROUP) {
            if (tag >>> 3 !== field) malformed('mismatched end group');
            return;
          }
          this.skip(w, end, tag >>> 3);
        }
      case WT_FIXED32:
        this.pos += 4;
        break;
      default:
        malformed(`invalid wire type ${wt}`);
    }
    if (this.pos > end) malformed('truncated fixed field');
  }
}

/** Decode the exported subset of a grpc.StatsContainerResponse. Throws AGENT_PROTOCOL on malformed bytes. */
export function decodeLeanContainerStats(bytes: Uint8Array): LeanContainerStats {
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  const c = new Cursor(buf, 0);
  const out: LeanContainerStats = {
    cpuTotalNs: undefined,
    memory: undefined,
    pids: undefined,
    blkioServiceBytes: [],
    network: [],
  };
  const end = buf.length;
  while (c.pos < end) {
    const tag = c.u32(end);
    const field = tag >>> 3;
    const wt = tag & 7;
    if (field === 1 && wt === WT_LEN) {
      cgroupStats(c, c.sub(end), out);
    } else if (field === 2 && wt === WT_LEN) {
      out.network.push(networkStats(c, c.sub(end)));
    } else {
      c.skip(wt, end, field);
    }
  }
  return out;
}

function cgroupStats(c: Cursor, end: number, out: LeanContainerStats): void {
  while (c.pos < end) {
    const tag = c.u32(end);
    const field = tag >>> 3;
    const wt = tag & 7;
    if (wt !== WT_LEN || field < 1 || field > 4) {
      c.skip(wt, end, field); // hugetlb_stats (5) and unknown fields
      continue;
    }
    const e = c.sub(end);
    if (field === 1) cpuStats(c, e, out);
    else if (field === 2) memoryStats(c, e, out);
    else if (field === 3) out.pids = pidsStats(c, e, out.pids ?? 0);
    else blkioStats(c, e, out.blkioServiceBytes);
    c.pos = e;
  }
}

function cpuStats(c: Cursor, end: number, out: LeanContainerStats): void {
  while (c.pos < end) {
    const tag = c.u32(end);
    if (tag === ((1 << 3) | WT_LEN)) {
      // cpu_usage
      const e = c.sub(end);
      let total = out.cpuTotalNs ?? 0;
      while (c.pos < e) {
        const t = c.u32(e);
        if (t === ((1 << 3) | WT_VARINT)) total = c.u64(e);
        else c.skip(t & 7, e, t >>> 3);
      }
      out.cpuTotalNs = total;
    } else {
      c.skip(tag & 7, end, tag >>> 3);
    }
  }
}

function memoryStats(c: Cursor, end: number, out: LeanContainerStats): void {
  while (c.pos < end) {
    const tag = c.u32(end);
    if (tag === ((2 << 3) | WT_LEN)) {
      // usage (MemoryData): usage = 1, limit = 4
      const e = c.sub(end);
      let usage = out.memory?.usage ?? 0;
      let limit = out.memory?.limit ?? 0;
      while (c.pos < e) {
        const t = c.u32(e);
        if (t === ((1 << 3) | WT_VARINT)) usage = c.u64(e);
        else if (t === ((4 << 3) | WT_VARINT)) limit = c.u64(e);
        else c.skip(t & 7, e, t >>> 3);
      }
      out.memory = { usage, limit };
    } else {
      c.skip(tag & 7, end, tag >>> 3); // cache, swap/kernel usage, use_hierarchy, the stats map
    }
  }
}

function pidsStats(c: Cursor, end: number, current: number): number {
  while (c.pos < end) {
    const tag = c.u32(end);
    if (tag === ((1 << 3) | WT_VARINT)) current = c.u64(end);
    else c.skip(tag & 7, end, tag >>> 3);
  }
  return current;
}

function blkioStats(c: Cursor, end: number, entries: LeanBlkioEntry[]): void {
  while (c.pos < end) {
    const tag = c.u32(end);
    if (tag !== ((1 << 3) | WT_LEN)) {
      c.skip(tag & 7, end, tag >>> 3); // the other seven lists
      continue;
    }
    const e = c.sub(end);
    let op = '';
    let value = 0;
    while (c.pos < e) {
      const t = c.u32(e);
      if (t === ((3 << 3) | WT_LEN)) op = c.str(e);
      else if (t === ((4 << 3) | WT_VARINT)) value = c.u64(e);
      else c.skip(t & 7, e, t >>> 3);
    }
    entries.push({ op, value });
  }
}

function networkStats(c: Cursor, end: number): LeanNetworkStats {
  const n: LeanNetworkStats = { name: '', rx_bytes: 0, tx_bytes: 0 };
  while (c.pos < end) {
    const tag = c.u32(end);
    if (tag === ((1 << 3) | WT_LEN)) n.name = c.str(end);
    else if (tag === ((2 << 3) | WT_VARINT)) n.rx_bytes = c.u64(end);
    else if (tag === ((6 << 3) | WT_VARINT)) n.tx_bytes = c.u64(end);
    else c.skip(tag & 7, end, tag >>> 3);
  }
  c.pos = end;
  return n;
}
