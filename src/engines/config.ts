// The two configurations that travel between stages. The *engine config* is the JSON a wrapper
// writes ({engineName, containerID, engineConfig}); the *starter config* is what stage 1 decides
// (namespaces, id maps, capabilities, target ids) and what the starter and stage 2 apply.
import type { NamespaceKind } from '../native/constants';
import { usageError } from '../common/errors';

/** Largest engine config tsrun-starter accepts. */
export const MAX_ENGINE_CONFIG = 1 << 20;

export interface CommonConfig {
  engineName: string;
  containerID: string;
  engineConfig: unknown;
}

export interface IdMap {
  containerID: number;
  hostID: number;
  size: number;
}

export interface CapabilityConfig {
  bounding: string[];
  effective: string[];
  permitted: string[];
  inheritable: string[];
  ambient: string[];
}

/** A compiled seccomp filter, loaded by stage 2 right before execve. */
export interface SeccompConfig {
  /** Classic BPF instructions (struct sock_filter), base64. */
  filter: string;
  /** SECCOMP_FILTER_FLAG_* bits to load it with. */
  flags: number;
}

export interface StarterConfig {
  /** Namespaces to create for the container. */
  namespaces: Partial<Record<NamespaceKind, boolean>>;
  /** Namespaces to join, by path, in this order (user first). */
  joinNamespaces: { kind: NamespaceKind; path: string }[];
  uidMap: IdMap[];
  gidMap: IdMap[];
  /**
   * The maps hold ranges only newuidmap and newgidmap (setuid, from /etc/subuid and
   * /etc/subgid) may write: the master runs them instead of writing the files itself.
   */
  idMapHelpers?: boolean;
  /**
   * Joining an instance: its mount namespace, entered by stage 2 itself (a process that execs
   * Node must start on the host's files), and whether the clone forks once more after joining
   * (a pid namespace is entered only by the children of the process that joins it).
   */
  joinMount?: string;
  forkAfterJoin?: boolean;
  /** Supplementary groups the clone sets before joining (root joining a user's user namespace). */
  joinGroups?: number[];
  /** Start the RPC server (not when joining an instance). */
  rpc: boolean;
  instance: boolean;
  /** Ids and capabilities stage 2 gives the payload. */
  targetUID: number;
  targetGIDs: number[];
  capabilities: CapabilityConfig;
  noNewPrivs: boolean;
  seccomp?: SeccompConfig;
}

/** Whether the container runs in a user namespace, its own or one it joins. */
export function inUserNamespace(starter: StarterConfig): boolean {
  return starter.namespaces.user === true || starter.joinNamespaces.some((n) => n.kind === 'user');
}

export function emptyStarterConfig(): StarterConfig {
  return {
    namespaces: {},
    joinNamespaces: [],
    uidMap: [],
    gidMap: [],
    rpc: true,
    instance: false,
    targetUID: 0,
    targetGIDs: [0],
    capabilities: { bounding: [], effective: [], permitted: [], inheritable: [], ambient: [] },
    noNewPrivs: false,
  };
}

const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

/** Parses and checks the common part of an engine config. */
export function parseCommonConfig(bytes: Buffer | string): CommonConfig {
  if (bytes.length > MAX_ENGINE_CONFIG) {
    throw usageError(
      `engine config too large: ${bytes.length} bytes (at most ${MAX_ENGINE_CONFIG})`,
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString());
  } catch (err) {
    throw usageError(`engine config is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw usageError('engine config must be a JSON object');
  }
  const { engineName, containerID, engineConfig } = value as Record<string, unknown>;
  if (typeof engineName !== 'string' || engineName === '') {
    throw usageError('engine config: engineName must be a non-empty string');
  }
  if (typeof containerID !== 'string' || !ID_PATTERN.test(containerID)) {
    throw usageError('engine config: containerID must be 1-128 letters, digits, _ . or -');
  }
  if (typeof engineConfig !== 'object' || engineConfig === null) {
    throw usageError('engine config: engineConfig must be an object');
  }
  return { engineName, containerID, engineConfig };
}
