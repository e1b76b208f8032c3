/** Build identity, reported by `--version`, the announce log record and `kata_monitor_build_info`. */
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface BuildInfo {
  name: string;
  version: string;
  commit: string;
  node: string;
  os: string;
  arch: string;
}

function readPackageVersion(): string {
  try {
    const pkg = JSON.parse(fs.readFileSync(path.resolve(__dirname, '..', 'package.json'), 'utf8')) as {
      version?: string;
    };
    return pkg.version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
}

/** The commit comes from KATA_MONITOR_COMMIT (set at image build) or a `COMMIT` file next to package.json. */
function readCommit(): string {
  const fromEnv = process.env.KATA_MONITOR_COMMIT;
  if (fromEnv) return fromEnv;
  try {
    return fs.readFileSync(path.resolve(__dirname, '..', 'COMMIT'), 'utf8').trim() || 'unknown';
  } catch {
    return 'unknown';
  }
}

export function buildInfo(): BuildInfo {
  return {
    name: 'kata-monitor',
    version: readPackageVersion(),
    commit: readCommit(),
    node: process.version,
    os: process.platform,
    arch: process.arch,
  };
}

/** The `--version` text, in the upstream layout. */
export function versionText(b: BuildInfo = buildInfo()): string {
  return `${b.name}\n Version:\t${b.version}\n Node version:\t${b.node}\n Git commit:\t${b.commit}\n OS/Arch:\t${b.os}/${b.arch}\n`;
}
