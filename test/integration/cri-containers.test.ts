import * as path from 'node:path';
import { CriClient } from '../../src/cri/cri-client';
import { SimCriServer } from '../../src/sim/cri-server';
import { rmrf, tmpDir } from '../helpers/util';

describe('CRI ListContainers (container ids of runtime-rs sandboxes)', () => {
  let dir: string;
  let server: SimCriServer;
  let client: CriClient;

  beforeEach(async () => {
    dir = tmpDir('kcc-');
    server = await SimCriServer.start({ socketPath: path.join(dir, 'cri.sock') });
    client = new CriClient({ target: `unix://${path.join(dir, 'cri.sock')}`, deadlineMs: 2000 });
    const pod = { namespace: 'default', labels: {}, runtimeHandler: 'kata-dragonball' };
    server.upsert({ ...pod, id: 'sb-a', name: 'a', uid: 'u-a', containers: ['c-2', 'c-1'] });
    server.upsert({ ...pod, id: 'sb-b', name: 'b', uid: 'u-b', containers: ['c-3'] });
    server.upsert({ ...pod, id: 'sb-h', name: 'h', uid: 'u-h', containers: ['c-4'], hidden: true });
  });
  afterEach(async () => {
    client.close();
    await server.stop();
    rmrf(dir);
  });

  it("lists one sandbox's containers, sorted, over real gRPC", async () => {
    expect(await client.listContainerIds('sb-a')).toEqual(['c-1', 'c-2']);
    expect(await client.listContainerIds('sb-b')).toEqual(['c-3']);
    expect(server.callCount('ListContainers')).toBe(2);
  });

  it('knows no containers of a sandbox CRI does not report', async () => {
    expect(await client.listContainerIds('sb-h')).toEqual([]);
    expect(await client.listContainerIds('nope')).toEqual([]);
  });

  it('fails with a CRI error when the runtime is down', async () => {
    await server.stop();
    await expect(client.listContainerIds('sb-a')).rejects.toMatchObject({ name: expect.any(String) });
  });
});
