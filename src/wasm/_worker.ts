/**
 * A Wasm worker of a {@linkcode RunnablePool}: runs one job at a time, keeps one instance per
 * runnable for the next job, and answers every `run` with exactly one `done` (see _protocol.ts).
 *
 * @module
 */

import { type JobOutcome, JobState, RunnableInstance } from "./_host.ts";
import type { FromWorker, RunMessage, RunnableSpec, ToWorker } from "./_protocol.ts";
import type { RunResult } from "./runnable.ts";

// The worker global scope (lib "deno.worker"), typed here so this file checks with the
// rest of src/ under the default window lib.
const scope = self as unknown as {
  onmessage: ((event: MessageEvent<ToWorker>) => void) | null;
  postMessage(message: FromWorker, transfer?: Transferable[]): void;
};

const modules = new Map<number, { spec: RunnableSpec; module: WebAssembly.Module }>();
const instances = new Map<number, RunnableInstance>();

scope.onmessage = (event) => {
  const message = event.data;
  if (message.kind === "forget") {
    modules.delete(message.key);
    instances.delete(message.key);
    return;
  }
  run(message);
};

function run(message: RunMessage): void {
  const { jobId, runnable, input, request } = message;
  const { key, name, maxMemoryPages, module } = runnable;
  if (module) modules.set(key, { spec: { key, name, maxMemoryPages }, module });
  const job = new JobState(randomIdent(), request);
  const outcome = execute(key, name, jobId, job, input);
  if (!outcome.reusable) instances.delete(key);
  const { result } = outcome;
  // The output was copied out of the module's memory into a buffer of its own: move it.
  const transfer = result.ok ? [result.output.buffer as ArrayBuffer] : [];
  scope.postMessage(
    { kind: "done", jobId, ident: job.ident, result, logs: job.logs, droppedLogs: job.droppedLogs },
    transfer,
  );
}

function execute(
  key: number,
  name: string,
  jobId: number,
  job: JobState,
  input: Uint8Array,
): JobOutcome {
  const loaded = modules.get(key);
  if (!loaded) {
    return { result: failed(`runnable "${name}" is not loaded in this worker`), reusable: false };
  }
  let instance = instances.get(key);
  if (!instance) {
    try {
      instance = new RunnableInstance(loaded.spec, loaded.module);
    } catch (error) {
      return {
        result: failed(`runnable "${name}" could not be instantiated: ${error}`),
        reusable: false,
      };
    }
    instances.set(key, instance);
    scope.postMessage({ kind: "instance", key, interrupt: instance.interruptBuffer });
  }
  return instance.run(jobId, job, input);
}

/** A random non-negative int32, as Reactr picks a job's identifier. */
function randomIdent(): number {
  return crypto.getRandomValues(new Uint32Array(1))[0]! >>> 1;
}

function failed(message: string): RunResult {
  return { ok: false, code: 500, message };
}

scope.postMessage({ kind: "ready" });
