/**
 * The relay's durable record of which identity owns which forwarding address.
 *
 * File `<stateDir>/registrations.json` (0600, replaced atomically on every change):
 *
 * ```json
 * {
 *   "version": 1,
 *   "registrations": {
 *     "FWD_0123456789abcdef": {
 *       "identifier": "I<64 hex digits>",
 *       "publicKey": "<standard base64 of the 32-byte Ed25519 key>",
 *       "since": "2026-01-01T00:00:00.000Z"
 *     }
 *   }
 * }
 * ```
 *
 * @module
 */

import { join } from "node:path";
import {
  ensureStateDir,
  identifierOf,
  isIdentifier,
  readStateFile,
  StateFileError,
  writeStateFile,
} from "../channel/mod.ts";
import { FORWARDING_ADDRESS_PREFIX, RELAY_PUBLIC_KEY_LEN } from "../wire/mod.ts";

/** Name of the registrations file inside the relay's state folder. */
export const REGISTRATIONS_FILE_NAME = "registrations.json";
const FILE_VERSION = 1;
const ADDRESS_PATTERN = /^FWD_[0-9a-f]{16}$/;
const ENTRY_KEYS = ["identifier", "publicKey", "since"];

/** Who owns an address. */
export interface Registration {
  /** The owner's identifier (`"I"` + hex SHA-256 of the public key). */
  readonly identifier: string;
  /** The owner's Ed25519 public key, standard base64. */
  readonly publicKey: string;
  /** When the address was first registered (ISO 8601). */
  readonly since: string;
}

/** Address → owner, in memory, saved to the state file on demand with coalesced writes. */
export class RegistrationStore {
  readonly path: string;
  readonly #entries: Map<string, Registration>;
  #generation = 0;
  #savedGeneration = 0;
  #saving: Promise<void> = Promise.resolve();

  private constructor(path: string, entries: Map<string, Registration>) {
    this.path = path;
    this.#entries = entries;
  }

  /**
   * Loads `<stateDir>/registrations.json` (creating the folder if needed; a missing file is
   * an empty store).
   *
   * @throws {StateFileError} when the file is malformed or writable by others.
   * @throws {SyntaxError} when it is not JSON.
   */
  static async open(stateDir: string): Promise<RegistrationStore> {
    await ensureStateDir(stateDir);
    const path = join(stateDir, REGISTRATIONS_FILE_NAME);
    const value = await readStateFile(path);
    return new RegistrationStore(path, value === undefined ? new Map() : parse(path, value));
  }

  /** How many addresses are registered. */
  get size(): number {
    return this.#entries.size;
  }

  /** The owner of `address`, if any. */
  get(address: string): Registration | undefined {
    return this.#entries.get(address);
  }

  /** Records an owner in memory; {@link RegistrationStore.save} makes it durable. */
  set(address: string, registration: Registration): void {
    this.#entries.set(address, registration);
    this.#generation++;
  }

  /** Forgets an address in memory. */
  delete(address: string): void {
    if (this.#entries.delete(address)) this.#generation++;
  }

  /**
   * Resolves once the file holds every change made before the call. Writes are serialised,
   * and one write covers every change made before it starts.
   */
  save(): Promise<void> {
    const wanted = this.#generation;
    const run = this.#saving.then(async () => {
      if (this.#savedGeneration >= wanted) return;
      const generation = this.#generation;
      await writeStateFile(this.path, this.#toJson());
      this.#savedGeneration = generation;
    });
    this.#saving = run.catch(() => {});
    return run;
  }

  /** Resolves once no write is in progress. */
  settled(): Promise<void> {
    return this.#saving;
  }

  #toJson(): unknown {
    const registrations: Record<string, Registration> = {};
    for (const [address, entry] of this.#entries) registrations[address] = entry;
    return { version: FILE_VERSION, registrations };
  }
}

function parse(path: string, value: unknown): Map<string, Registration> {
  const fail = (what: string) =>
    new StateFileError(
      `${path}: ${what}; restore the file from a backup, or delete it ` +
        "(every address is then free to be registered again)",
      path,
      undefined,
    );
  if (!isRecord(value)) throw fail("expected a JSON object");
  for (const key of Object.keys(value)) {
    if (key !== "version" && key !== "registrations") throw fail(`unknown key "${key}"`);
  }
  if (value.version !== FILE_VERSION) {
    throw fail(`unsupported version ${JSON.stringify(value.version)} (expected ${FILE_VERSION})`);
  }
  const registrations = value.registrations;
  if (!isRecord(registrations)) throw fail(`"registrations" must be an object`);
  const entries = new Map<string, Registration>();
  for (const [address, entry] of Object.entries(registrations)) {
    const at = `registrations["${address}"]`;
    if (!ADDRESS_PATTERN.test(address)) {
      throw fail(`${at}: not a forwarding address (${FORWARDING_ADDRESS_PREFIX} + 16 hex digits)`);
    }
    if (!isRecord(entry)) throw fail(`${at}: expected an object`);
    for (const key of Object.keys(entry)) {
      if (!ENTRY_KEYS.includes(key)) throw fail(`${at}: unknown key "${key}"`);
    }
    const { identifier, publicKey, since } = entry;
    if (!isIdentifier(identifier)) throw fail(`${at}.identifier: not an identifier`);
    if (typeof since !== "string") throw fail(`${at}.since: expected a string`);
    let key: Uint8Array;
    try {
      if (typeof publicKey !== "string") throw new TypeError("not a string");
      key = Uint8Array.fromBase64(publicKey, { lastChunkHandling: "strict" });
    } catch {
      throw fail(`${at}.publicKey: not standard base64`);
    }
    if (key.length !== RELAY_PUBLIC_KEY_LEN || identifierOf(key) !== identifier) {
      throw fail(`${at}.publicKey: does not match the identifier`);
    }
    entries.set(address, { identifier, publicKey: publicKey as string, since });
  }
  return entries;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
