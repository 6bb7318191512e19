// Which RPC methods each engine serves. An engine's rpc-server module registers its table when it
// is loaded; the RPC server entry loads that module and serves the table by engine name.
import type { Socket } from 'node:net';
import { MethodTable, serve, ServeOptions } from './server';

const tables = new Map<string, MethodTable>();

/** Registers (or replaces) the method table of engine `engineName`. */
export function registerMethods(engineName: string, table: MethodTable): void {
  tables.set(engineName, table);
}

/** The method table of engine `engineName`, if one is registered. */
export function methodsOf(engineName: string): MethodTable | undefined {
  return tables.get(engineName);
}

/**
 * Serves the RPC methods of engine `engineName` on `conn` until the peer closes it (see serve()).
 * Throws when the engine has no methods registered.
 */
export function serveRuntimeEngineRequests(
  engineName: string,
  conn: Socket,
  options: ServeOptions = {},
): Promise<void> {
  const table = tables.get(engineName);
  if (table === undefined) {
    const known = [...tables.keys()].join(', ') || 'none';
    throw new Error(`engine '${engineName}' has no RPC methods registered (registered: ${known})`);
  }
  return serve(conn, table, options);
}
