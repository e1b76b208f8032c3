import * as fs from 'node:fs';
import * as path from 'node:path';
import { READY_FILTER_REQUEST } from '../../src/cri/cri-client';
import { criService, loadCriService } from '../../src/cri/cri-proto';
import { PROTO_DIR } from '../../src/util/proto-path';
import { rmrf, tmpDir } from '../helpers/util';

describe('CRI service definition (protobufjs over proto/cri)', () => {
  it('encodes the READY filter as kata-monitor sends it', () => {
    const bytes = criService('v1').ListPodSandbox.requestSerialize(READY_FILTER_REQUEST);
    expect([...bytes]).toEqual([0x0a, 0x02, 0x12, 0x00]);
    expect(criService('v1').ListPodSandbox.requestDeserialize(bytes)).toEqual({
      filter: { id: '', state: { state: 'SANDBOX_READY' }, label_selector: {} },
    });
  });

  it('names the methods of each API version and loads each version once', () => {
    expect(criService('v1').PodSandboxStatus.path).toBe('/runtime.v1.RuntimeService/PodSandboxStatus');
    expect(criService('v1alpha2').ListContainers.path).toBe(
      '/runtime.v1alpha2.RuntimeService/ListContainers',
    );
    expect(criService('v1alpha2')).toBe(criService('v1alpha2'));
  });

  it('turns 64-bit integers and enums into strings and fills defaults, field names as in the .proto', () => {
    const m = criService('v1').PodSandboxStatus;
    const createdAt = '1795339072123456789'; // beyond 2^53: must survive as a string
    const bytes = m.responseSerialize({
      status: {
        id: 'abc',
        metadata: { name: 'web', uid: 'u1', namespace: 'ns' },
        state: 'SANDBOX_NOTREADY',
        created_at: createdAt,
        labels: { app: 'web' },
      },
    });
    const back = m.responseDeserialize(bytes) as {
      status: Record<string, unknown>;
      info: Record<string, string>;
    };
    expect(back.status.created_at).toBe(createdAt);
    expect(back.status.state).toBe('SANDBOX_NOTREADY');
    expect(back.status.metadata).toEqual({ name: 'web', uid: 'u1', namespace: 'ns', attempt: 0 });
    expect(back.status.labels).toEqual({ app: 'web' });
    expect(back.status.runtime_handler).toBe('');
    expect(back.info).toEqual({});
  });

  it('refuses a schema that lacks a method the daemon calls', () => {
    const dir = tmpDir('cri-proto');
    try {
      fs.mkdirSync(path.join(dir, 'cri'));
      const text = fs
        .readFileSync(path.join(PROTO_DIR, 'cri', 'runtime_v1.proto'), 'utf8')
        .replace(/^\s*rpc ListContainers.*$/m, '');
      fs.writeFileSync(path.join(dir, 'cri', 'runtime_v1.proto'), text);
      expect(() => loadCriService('v1', dir)).toThrow(/lacks ListContainers/);
    } finally {
      rmrf(dir);
    }
  });
});
