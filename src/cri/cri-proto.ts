/**
 * The grpc-js service definition of the CRI `RuntimeService` subset in proto/cri, built with protobufjs (the
 * codec the agent already uses) instead of @grpc/proto-loader, which loaded a second protobufjs copy (43
 * modules) and descriptors of every message: the daemon idles about 2 MB smaller (docs/performance.md).
 *
 * Messages are converted as proto-loader was configured before: field names as in the .proto (`keepCase`),
 * 64-bit integers and enums as strings, unset fields as their defaults. Each API version is loaded on first
 * use, so a runtime that speaks `v1` never costs the `v1alpha2` schema.
 */
import * as path from 'node:path';
import type { ServiceDefinition } from '@grpc/grpc-js';
import * as protobuf from 'protobufjs';
import { PROTO_DIR } from '../util/proto-path';

export type CriApiVersion = 'v1' | 'v1alpha2';

export type CriMethodName = 'Version' | 'PodSandboxStatus' | 'ListPodSandbox' | 'ListContainers';

const TO_OBJECT: protobuf.IConversionOptions = { longs: String, enums: String, defaults: true, oneofs: true };

/** One unary method: its path and the codecs of both directions (client and server use the same shape). */
export interface CriMethod {
  path: string;
  requestStream: false;
  responseStream: false;
  requestSerialize: (value: unknown) => Buffer;
  requestDeserialize: (bytes: Buffer) => unknown;
  responseSerialize: (value: unknown) => Buffer;
  responseDeserialize: (bytes: Buffer) => unknown;
  originalName: string;
}

export type CriService = Record<CriMethodName, CriMethod>;

function encoder(type: protobuf.Type): (value: unknown) => Buffer {
  return value => {
    const bytes = type.encode(type.fromObject(value as Record<string, unknown>)).finish();
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  };
}

function decoder(type: protobuf.Type): (bytes: Buffer) => unknown {
  return bytes => type.toObject(type.decode(bytes), TO_OBJECT);
}

/** Build the service of one API version from `<protoDir>/cri/runtime_<api>.proto` (pure apart from the read). */
export function loadCriService(api: CriApiVersion, protoDir: string = PROTO_DIR): CriService {
  const file = path.join(protoDir, 'cri', `runtime_${api}.proto`);
  const root = new protobuf.Root().loadSync(file, { keepCase: true });
  root.resolveAll();
  const svc = root.lookupService(`runtime.${api}.RuntimeService`);
  const method = (name: CriMethodName): CriMethod => {
    const m = svc.methods[name];
    if (!m?.resolvedRequestType || !m.resolvedResponseType) throw new Error(`${file} lacks ${name}`);
    const req = m.resolvedRequestType;
    const res = m.resolvedResponseType;
    return {
      path: `/runtime.${api}.RuntimeService/${name}`,
      requestStream: false,
      responseStream: false,
      requestSerialize: encoder(req),
      requestDeserialize: decoder(req),
      responseSerialize: encoder(res),
      responseDeserialize: decoder(res),
      originalName: name,
    };
  };
  return {
    Version: method('Version'),
    PodSandboxStatus: method('PodSandboxStatus'),
    ListPodSandbox: method('ListPodSandbox'),
    ListContainers: method('ListContainers'),
  };
}

const loaded = new Map<CriApiVersion, CriService>();

/** The service of one API version over the repository's proto/, loaded once (an immutable schema). */
export function criService(api: CriApiVersion): CriService {
  let svc = loaded.get(api);
  if (!svc) {
    svc = loadCriService(api);
    loaded.set(api, svc);
  }
  return svc;
}

/** The service as grpc-js `Server.addService` takes it. */
export function asServiceDefinition(svc: CriService): ServiceDefinition {
  return svc as unknown as ServiceDefinition;
}
