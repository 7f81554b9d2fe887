/**
 * `env.db_exec`: the wire form of a job's database query, from its worker to the pool's
 * {@linkcode DatabaseBackend} on the main thread (Reactr `api/db.go`): a query the Directive
 * declares, by type and name, with the variables the job added with `add_ffi_var`, in order,
 * which the call uses up. The result is the backend's JSON.
 *
 * @module
 */

import { errorReply, messageOf, valueReply } from "./_call_reply.ts";
import type { DatabaseBackend, QueryVariable } from "./host_services.ts";

const OP_DATABASE = 5;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** What a job hears when its pool has no database. */
export const NO_DATABASE =
  "no database is configured: add connections.database and the query under queries in " +
  "Directive.yaml";

interface DatabaseCall {
  queryType: number;
  name: string;
  variables: QueryVariable[];
}

/** A query as a worker sends it: u8 OP_DATABASE, then the UTF-8 JSON of {@linkcode DatabaseCall}. */
export function encodeDatabaseCall(
  queryType: number,
  name: string,
  variables: readonly QueryVariable[],
): Uint8Array {
  const json = encoder.encode(JSON.stringify({ queryType, name, variables }));
  const call = new Uint8Array(1 + json.length);
  call[0] = OP_DATABASE;
  call.set(json, 1);
  return call;
}

/** Whether a host call is a database query. */
export function isDatabaseCall(call: Uint8Array): boolean {
  return call[0] === OP_DATABASE;
}

/**
 * Runs a call of {@linkcode encodeDatabaseCall} on `database`; never throws or rejects.
 *
 * @param database the pool's database, if it has one
 * @param call the call (read before this returns)
 * @returns the reply: the result's JSON, or an error message
 */
export function serveDatabaseCall(
  database: DatabaseBackend | undefined,
  call: Uint8Array,
): Uint8Array | Promise<Uint8Array> {
  if (!database) return errorReply(NO_DATABASE);
  const { queryType, name, variables } = JSON.parse(
    decoder.decode(call.subarray(1)),
  ) as DatabaseCall;
  try {
    return database.exec(queryType, name, Object.freeze(variables.map((v) => Object.freeze(v))))
      .then(valueReply, (error) => errorReply(messageOf(error)));
  } catch (error) {
    return errorReply(messageOf(error));
  }
}
