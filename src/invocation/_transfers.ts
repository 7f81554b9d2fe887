/**
 * Reassembly of the files and manifests a proxy delivers (BLOB and DEPLOY messages and the
 * BODY messages that continue them), with their sizes bounded: a transfer that grows past its
 * announced size, or transfers that together hold more than {@linkcode MAX_PENDING_BYTES}, break
 * the protocol.
 *
 * @module
 */

import { concatBytes } from "../wire/mod.ts";
import {
  type BlobHeader,
  checkManifest,
  type DeployHeader,
  type DeployManifest,
} from "./deployment_codec.ts";
import { BLOB, DEPLOY, InvocationProtocolError } from "./invocation_codec.ts";

/** Most bytes of unfinished transfers held at once: 256 MiB. */
export const MAX_PENDING_BYTES: number = 256 * 1024 * 1024;

/** A finished transfer. */
export type Transferred =
  | { readonly kind: "blob"; readonly sha256: string; readonly bytes: Uint8Array }
  | { readonly kind: "deploy"; readonly id: number; readonly manifest: DeployManifest };

interface Pending {
  readonly type: typeof BLOB | typeof DEPLOY;
  readonly header: BlobHeader | DeployHeader;
  readonly chunks: Uint8Array[];
  size: number;
}

const decoder = new TextDecoder("utf-8", { fatal: true });

/** The transfers in progress on one channel. */
export class Transfers {
  readonly #pending = new Map<number, Pending>();
  #bytes = 0;

  /** True when `id` is a transfer in progress. */
  has(id: number): boolean {
    return this.#pending.has(id);
  }

  /**
   * Starts a transfer with its first message; answers it when that was also the last.
   *
   * @throws InvocationProtocolError for a reused id or a size out of bounds
   */
  start(message: {
    type: typeof BLOB | typeof DEPLOY;
    id: number;
    end: boolean;
    header: BlobHeader | DeployHeader;
    chunk: Uint8Array;
  }): Transferred | undefined {
    if (this.#pending.has(message.id)) {
      throw new InvocationProtocolError(`transfer id ${message.id} is already in use`);
    }
    this.#pending.set(message.id, {
      type: message.type,
      header: message.header,
      chunks: [],
      size: 0,
    });
    return this.add(message.id, message.chunk, message.end);
  }

  /**
   * Adds a chunk to transfer `id`; answers the transfer when `end` finishes it.
   *
   * @throws InvocationProtocolError when the transfer outgrows its size, ends short of it, or
   *   carries a malformed manifest
   */
  add(id: number, chunk: Uint8Array, end: boolean): Transferred | undefined {
    const pending = this.#pending.get(id)!;
    pending.size += chunk.length;
    this.#bytes += chunk.length;
    if (pending.size > pending.header.size || this.#bytes > MAX_PENDING_BYTES) {
      throw new InvocationProtocolError(`transfer ${id} exceeds its announced size`);
    }
    if (chunk.length > 0) pending.chunks.push(chunk);
    if (!end) return undefined;
    this.#pending.delete(id);
    this.#bytes -= pending.size;
    if (pending.size !== pending.header.size) {
      throw new InvocationProtocolError(`transfer ${id} ended short of its announced size`);
    }
    const bytes = concatBytes(pending.chunks);
    if (pending.type === BLOB) {
      return { kind: "blob", sha256: (pending.header as BlobHeader).sha256, bytes };
    }
    let json: unknown;
    try {
      json = JSON.parse(decoder.decode(bytes));
    } catch (cause) {
      throw new InvocationProtocolError("a DEPLOY manifest is not JSON", { cause });
    }
    return { kind: "deploy", id, manifest: checkManifest(json) };
  }
}
