import * as path from 'node:path';

/** The repository's `proto/` directory, from `src/<dir>/` (ts-jest) or `dist/<dir>/` (built). */
export const PROTO_DIR = path.resolve(__dirname, '..', '..', 'proto');
