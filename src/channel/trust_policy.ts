/**
 * Which peers a node trusts: an identifier allowlist, pinned identities, and one-time
 * enrollment tickets that pin their redeemer. Closed by default: with no options nobody is
 * trusted.
 *
 * State file `<stateDir>/trust.json` (mode 0600, written atomically, every change persisted
 * before the call that made it resolves):
 *
 * ```json
 * {
 *   "version": 1,
 *   "pins": ["I<64 hex>", ...],
 *   "tickets": [
 *     { "id": "<32 hex>", "secretHash": "<64 hex: SHA-256 of the secret>",
 *       "responder": "I<64 hex>", "expiresAt": 1700000000000,
 *       "usedAt": null | 1700000000000, "usedBy": null | "I<64 hex>" }
 *   ]
 * }
 * ```
 *
 * Only the hash of a ticket secret is stored, so the file cannot be used to redeem one. Used
 * tickets stay (refused as "used") until they expire; expired tickets are pruned when a new
 * ticket is issued, so the file stays bounded by the issue rate times the TTL.
 *
 * One process owns a state folder: the file is not locked against other processes.
 *
 * @module
 */

import { join } from "node:path";
import { defaultBackend } from "./backends.ts";
import { constantTimeEqual } from "./constant_time.ts";
import type { CryptoBackend } from "./crypto_backend.ts";
import { isIdentifier } from "./identity.ts";
import { ensureStateDir, readStateFile, SECRET_FILE_MODE, writeStateFile } from "./state_dir.ts";
import {
  encodeTicket,
  TICKET_ID_LEN,
  TICKET_PRESENTATION_LEN,
  TICKET_SECRET_LEN,
} from "./ticket.ts";

/** Name of the trust state file inside the state folder. */
export const TRUST_FILE_NAME = "trust.json";
/** Version of the trust state file layout. */
export const TRUST_FILE_VERSION = 1;
/** Default lifetime of an issued ticket: one hour. */
export const DEFAULT_TICKET_TTL_MS = 60 * 60 * 1000;
/** Longest lifetime a ticket may be issued with: 30 days. */
export const MAX_TICKET_TTL_MS = 30 * 24 * 60 * 60 * 1000;

const SECRET_HASH_LEN = 32;
const HEX_ID_PATTERN = new RegExp(`^[0-9a-f]{${TICKET_ID_LEN * 2}}$`);
const HEX_HASH_PATTERN = new RegExp(`^[0-9a-f]{${SECRET_HASH_LEN * 2}}$`);

/** Options of {@link TrustPolicy.open}. */
export interface TrustPolicyOptions {
  /**
   * Folder to persist pins and issued tickets in (`<stateDir>/trust.json`, 0600, atomic);
   * created with mode 0700 if absent. Without it, state lives in memory only and is lost on
   * exit.
   */
  readonly stateDir?: string;
  /** Identifiers trusted outright (`"I"` and 64 lower-case hex digits each). */
  readonly allow?: readonly string[];
  /**
   * Trust every peer, whatever its identity. For throwaway demos only: the channel is still
   * encrypted, but anyone who reaches the forwarding address is accepted. Default false.
   */
  readonly trustEveryoneInsecure?: boolean;
  /** The clock, in milliseconds since the Unix epoch; default `Date.now`. */
  readonly now?: () => number;
  /** The crypto backend (for SHA-256); default `defaultBackend()`. */
  readonly backend?: CryptoBackend;
}

/** Options of {@link TrustPolicy.issueTicket}. */
export interface IssueTicketOptions {
  /** Lifetime in milliseconds; default one hour, at most {@link MAX_TICKET_TTL_MS}. */
  readonly ttlMs?: number;
}

/** The outcome of redeeming a ticket. */
export interface TrustDecision {
  /** True when the ticket was valid; the initiator is now pinned. */
  readonly trusted: boolean;
  /** Why, for the local log (never for the peer): "redeemed", "unknown ticket", ... */
  readonly reason: string;
}

interface TicketRecord {
  readonly id: string;
  readonly secretHash: string;
  readonly responder: string;
  readonly expiresAt: number;
  readonly usedAt: number | null;
  readonly usedBy: string | null;
}

interface TrustState {
  readonly pins: ReadonlySet<string>;
  readonly tickets: ReadonlyMap<string, TicketRecord>;
}

/**
 * The trust decisions of one node. Mutations (pin, issue, redeem) run one at a time, in call
 * order, and each is persisted before its promise resolves; if persisting fails the change is
 * not applied and the promise rejects.
 *
 * @example
 * ```ts
 * const policy = await TrustPolicy.open({ stateDir: stateDirPath("proxy") });
 * const ticket = await policy.issueTicket(identity.identifier);
 * // ... later, inside the handshake:
 * const decision = await policy.redeemTicket(presentation, peerIdentifier);
 * if (!decision.trusted) log(`refused ${peerIdentifier}: ${decision.reason}`);
 * ```
 */
export class TrustPolicy {
  readonly #path: string | undefined;
  readonly #allow: ReadonlySet<string>;
  readonly #trustEveryoneInsecure: boolean;
  readonly #now: () => number;
  readonly #backend: CryptoBackend;
  #state: TrustState;
  #tail: Promise<unknown> = Promise.resolve();

  private constructor(
    path: string | undefined,
    allow: ReadonlySet<string>,
    options: TrustPolicyOptions,
    state: TrustState,
  ) {
    this.#path = path;
    this.#allow = allow;
    this.#trustEveryoneInsecure = options.trustEveryoneInsecure === true;
    this.#now = options.now ?? Date.now;
    this.#backend = options.backend ?? defaultBackend();
    this.#state = state;
  }

  /**
   * Opens a policy, loading `<stateDir>/trust.json` when `stateDir` is given.
   *
   * @param options See {@link TrustPolicyOptions}.
   * @returns The policy.
   * @throws {TypeError} when an `allow` entry is not an identifier (the value is quoted).
   * @throws {SyntaxError} naming the path and field when trust.json is malformed.
   * @throws {StateFileError} when trust.json is writable by group or others.
   * @throws `Deno` errors from the file system.
   * @example
   * ```ts
   * const policy = await TrustPolicy.open({ allow: ["I3f0c…"] });
   * ```
   */
  static async open(options: TrustPolicyOptions = {}): Promise<TrustPolicy> {
    const allow = new Set<string>();
    for (const [index, value] of (options.allow ?? []).entries()) {
      if (!isIdentifier(value)) {
        throw new TypeError(
          `allow[${index}]: ${JSON.stringify(value)} is not an identifier; ` +
            `expected "I" and 64 lower-case hex digits, as a node prints at start-up`,
        );
      }
      allow.add(value);
    }
    let path: string | undefined;
    let state: TrustState = { pins: new Set(), tickets: new Map() };
    if (options.stateDir !== undefined) {
      await ensureStateDir(options.stateDir);
      path = join(options.stateDir, TRUST_FILE_NAME);
      const json = await readStateFile(path);
      if (json !== undefined) state = parseTrustState(path, json);
    }
    return new TrustPolicy(path, allow, options, state);
  }

  /** True when this policy was opened with `trustEveryoneInsecure` (log it loudly). */
  get trustsEveryoneInsecure(): boolean {
    return this.#trustEveryoneInsecure;
  }

  /**
   * Is `identifier` trusted: allowlisted, pinned, or is everyone trusted (insecure mode)?
   *
   * @param identifier A peer identifier.
   * @returns The decision; false for anything that is not an identifier (unless insecure).
   * @throws Never.
   * @example
   * ```ts
   * if (!policy.isTrusted(peer)) throw new HandshakeError(...);
   * ```
   */
  isTrusted(identifier: string): boolean {
    if (this.#trustEveryoneInsecure) return true;
    return this.#allow.has(identifier) || this.#state.pins.has(identifier);
  }

  /**
   * Pins `identifier`: trusted from now on, across restarts.
   *
   * @param identifier The identifier to trust.
   * @returns Nothing, once persisted.
   * @throws {TypeError} when `identifier` is not an identifier (the value is quoted).
   * @throws `Deno` errors when the state file cannot be written (the pin is not applied).
   * @example
   * ```ts
   * await policy.pin(peerIdentifier);
   * ```
   */
  async pin(identifier: string): Promise<void> {
    checkIdentifier("identifier to pin", identifier);
    return await this.#mutate((state) => {
      if (state.pins.has(identifier)) return { result: undefined };
      return { next: { ...state, pins: new Set(state.pins).add(identifier) }, result: undefined };
    });
  }

  /**
   * Unpins `identifier`: no longer trusted through a pin (an `allow` entry still applies).
   *
   * @param identifier The identifier to forget.
   * @returns True when it was pinned, once persisted.
   * @throws {TypeError} when `identifier` is not an identifier.
   * @throws `Deno` errors when the state file cannot be written (nothing is changed).
   * @example
   * ```ts
   * await policy.unpin(lostLaptop);
   * ```
   */
  async unpin(identifier: string): Promise<boolean> {
    checkIdentifier("identifier to unpin", identifier);
    return await this.#mutate((state) => {
      if (!state.pins.has(identifier)) return { result: false };
      const pins = new Set(state.pins);
      pins.delete(identifier);
      return { next: { ...state, pins }, result: true };
    });
  }

  /**
   * Issues a one-time enrollment ticket. Only the SHA-256 of its secret is kept. Expired
   * tickets are pruned from the state at the same time.
   *
   * @param responder Identifier of this node, the one the initiator will handshake with.
   * @param options `ttlMs`: lifetime (default one hour, at most 30 days).
   * @returns The ticket's text form, for the operator to pass to the initiator. It holds a
   *   secret: show it once, never log it.
   * @throws {TypeError} when `responder` is not an identifier.
   * @throws {RangeError} when `ttlMs` is not a positive integer up to 30 days.
   * @throws `Deno` errors when the state file cannot be written (no ticket is issued).
   * @example
   * ```ts
   * const text = await policy.issueTicket(identity.identifier, { ttlMs: 10 * 60_000 });
   * ```
   */
  async issueTicket(responder: string, options: IssueTicketOptions = {}): Promise<string> {
    checkIdentifier("ticket responder", responder);
    const ttlMs = options.ttlMs ?? DEFAULT_TICKET_TTL_MS;
    if (!Number.isSafeInteger(ttlMs) || ttlMs <= 0 || ttlMs > MAX_TICKET_TTL_MS) {
      throw new RangeError(
        `ticket ttlMs must be a whole number of milliseconds in 1..${MAX_TICKET_TTL_MS} ` +
          `(30 days), got ${String(ttlMs)}`,
      );
    }
    return await this.#mutate((state) => {
      const now = this.#now();
      const id = crypto.getRandomValues(new Uint8Array(TICKET_ID_LEN));
      const secret = crypto.getRandomValues(new Uint8Array(TICKET_SECRET_LEN));
      const expiresAt = now + ttlMs;
      const record: TicketRecord = {
        id: id.toHex(),
        secretHash: this.#backend.hash("SHA256").hash(secret).toHex(),
        responder,
        expiresAt,
        usedAt: null,
        usedBy: null,
      };
      const tickets = new Map<string, TicketRecord>();
      for (const [key, ticket] of state.tickets) {
        if (ticket.expiresAt > now) tickets.set(key, ticket);
      }
      tickets.set(record.id, record);
      const text = encodeTicket({ responder, id, secret, expiresAt });
      secret.fill(0);
      return { next: { ...state, tickets }, result: text };
    });
  }

  /**
   * Redeems a ticket presented by an initiator during the handshake. Succeeds only for a
   * known ticket id whose secret matches (compared in constant time), not yet used and not
   * expired; then marks the ticket used and pins `initiator`, both persisted before this
   * resolves. Concurrent redeems of one ticket: exactly one succeeds.
   *
   * @param presentation The 48 bytes from `ticketPresentation` (id || secret).
   * @param initiator The authenticated identifier of the peer presenting it.
   * @returns `{ trusted, reason }`; `reason` is for the local log, not for the peer.
   * @throws {TypeError} when `initiator` is not an identifier (a wiring bug, not a peer's).
   * @throws `Deno` errors when the state file cannot be written (the ticket stays unused and
   *   the initiator is not pinned).
   * @example
   * ```ts
   * const decision = await policy.redeemTicket(payload, peerIdentifier);
   * if (!decision.trusted) log(`refused ${peerIdentifier}: ${decision.reason}`);
   * ```
   */
  async redeemTicket(presentation: Uint8Array, initiator: string): Promise<TrustDecision> {
    checkIdentifier("ticket initiator", initiator);
    if (!(presentation instanceof Uint8Array) || presentation.length !== TICKET_PRESENTATION_LEN) {
      const got = presentation instanceof Uint8Array
        ? `${presentation.length} bytes`
        : typeof presentation;
      return {
        trusted: false,
        reason: `malformed ticket presentation: expected ${TICKET_PRESENTATION_LEN} bytes, ` +
          `got ${got}`,
      };
    }
    // Copy now: the caller may reuse or zero its buffer while we wait for our turn.
    const id = presentation.slice(0, TICKET_ID_LEN).toHex();
    const secret = presentation.slice(TICKET_ID_LEN);
    const presentedHash = this.#backend.hash("SHA256").hash(secret);
    secret.fill(0);
    return await this.#mutate((state): Mutation<TrustDecision> => {
      const refuse = (reason: string) => ({ result: { trusted: false, reason } });
      // The id is looked up by value (not secret: it only names the ticket); the secret is
      // what proves possession and is compared in constant time.
      const ticket = state.tickets.get(id);
      if (ticket === undefined) return refuse(`unknown ticket ${id}`);
      if (!constantTimeEqual(presentedHash, Uint8Array.fromHex(ticket.secretHash))) {
        return refuse(`wrong secret for ticket ${id}`);
      }
      if (ticket.usedAt !== null) {
        return refuse(
          `ticket ${id} already used at ${new Date(ticket.usedAt).toISOString()} by ` +
            `${ticket.usedBy ?? "an unknown peer"}`,
        );
      }
      const now = this.#now();
      if (now >= ticket.expiresAt) {
        return refuse(`ticket ${id} expired at ${new Date(ticket.expiresAt).toISOString()}`);
      }
      const tickets = new Map(state.tickets).set(id, {
        ...ticket,
        usedAt: now,
        usedBy: initiator,
      });
      const pins = new Set(state.pins).add(initiator);
      return {
        next: { pins, tickets },
        result: { trusted: true, reason: `redeemed ticket ${id}; pinned ${initiator}` },
      };
    });
  }

  /**
   * The pinned identifiers, sorted.
   *
   * @returns A frozen snapshot.
   * @throws Never.
   * @example
   * ```ts
   * for (const id of policy.pinnedIdentifiers()) console.log(id);
   * ```
   */
  pinnedIdentifiers(): readonly string[] {
    return Object.freeze([...this.#state.pins].sort());
  }

  /**
   * Runs `change` after every earlier mutation has settled, persists its new state, then
   * applies it. A failed write leaves the in-memory state untouched (fail closed).
   */
  #mutate<T>(change: (state: TrustState) => Mutation<T>): Promise<T> {
    const run = async (): Promise<T> => {
      if (this.#path === undefined) {
        const { next, result } = change(this.#state);
        if (next !== undefined) this.#state = next;
        return result;
      }
      // Another process may share the state folder (`deno task ticket` next to a running
      // proxy): an exclusive lock around read, change and write keeps every update.
      using lock = await Deno.open(`${this.#path}.lock`, {
        create: true,
        write: true,
        mode: SECRET_FILE_MODE,
      });
      await lock.lock(true);
      const json = await readStateFile(this.#path);
      if (json !== undefined) this.#state = parseTrustState(this.#path, json);
      const { next, result } = change(this.#state);
      if (next !== undefined) {
        await writeStateFile(this.#path, serialize(next));
        this.#state = next;
      }
      return result;
    };
    const done = this.#tail.then(run);
    this.#tail = done.catch(() => {});
    return done;
  }
}

interface Mutation<T> {
  readonly next?: TrustState;
  readonly result: T;
}

function checkIdentifier(what: string, value: unknown): asserts value is string {
  if (!isIdentifier(value)) {
    throw new TypeError(
      `${what} ${JSON.stringify(value)} is not an identifier; ` +
        `expected "I" and 64 lower-case hex digits`,
    );
  }
}

function serialize(state: TrustState): unknown {
  return {
    version: TRUST_FILE_VERSION,
    pins: [...state.pins].sort(),
    tickets: [...state.tickets.values()].map((t) => ({
      id: t.id,
      secretHash: t.secretHash,
      responder: t.responder,
      expiresAt: t.expiresAt,
      usedAt: t.usedAt,
      usedBy: t.usedBy,
    })),
  };
}

/** Validates trust.json strictly; every problem names the file and the field. */
function parseTrustState(path: string, json: unknown): TrustState {
  const fail = (field: string, problem: string) =>
    new SyntaxError(
      `${path}: ${field}: ${problem}; fix or restore the file ` +
        "(deleting it forgets every pin and issued ticket)",
    );
  if (!isPlainObject(json)) throw fail("(top level)", "expected an object");
  checkKeys(json, ["version", "pins", "tickets"], "(top level)", fail);
  if (json.version !== TRUST_FILE_VERSION) {
    throw fail("version", `expected ${TRUST_FILE_VERSION}, got ${JSON.stringify(json.version)}`);
  }
  if (!Array.isArray(json.pins)) throw fail("pins", "expected an array");
  const pins = new Set<string>();
  for (const [i, pin] of json.pins.entries()) {
    if (!isIdentifier(pin)) throw fail(`pins[${i}]`, `${JSON.stringify(pin)} is not an identifier`);
    pins.add(pin);
  }
  if (!Array.isArray(json.tickets)) throw fail("tickets", "expected an array");
  const tickets = new Map<string, TicketRecord>();
  const fields = ["id", "secretHash", "responder", "expiresAt", "usedAt", "usedBy"];
  for (const [i, raw] of json.tickets.entries()) {
    const at = `tickets[${i}]`;
    if (!isPlainObject(raw)) throw fail(at, "expected an object");
    checkKeys(raw, fields, at, fail);
    const { id, secretHash, responder, expiresAt, usedAt, usedBy } = raw;
    if (typeof id !== "string" || !HEX_ID_PATTERN.test(id)) {
      throw fail(`${at}.id`, `expected ${TICKET_ID_LEN * 2} lower-case hex digits`);
    }
    if (tickets.has(id)) throw fail(`${at}.id`, `duplicate ticket id "${id}"`);
    if (typeof secretHash !== "string" || !HEX_HASH_PATTERN.test(secretHash)) {
      throw fail(`${at}.secretHash`, `expected ${SECRET_HASH_LEN * 2} lower-case hex digits`);
    }
    if (!isIdentifier(responder)) throw fail(`${at}.responder`, "expected an identifier");
    if (!isTimestamp(expiresAt)) throw fail(`${at}.expiresAt`, "expected milliseconds");
    if (usedAt !== null && !isTimestamp(usedAt)) {
      throw fail(`${at}.usedAt`, "expected null or milliseconds");
    }
    if (usedBy !== null && !isIdentifier(usedBy)) {
      throw fail(`${at}.usedBy`, "expected null or an identifier");
    }
    tickets.set(id, { id, secretHash, responder, expiresAt, usedAt, usedBy });
  }
  return { pins, tickets };
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isTimestamp(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

function checkKeys(
  value: Record<string, unknown>,
  allowed: readonly string[],
  at: string,
  fail: (field: string, problem: string) => SyntaxError,
): void {
  for (const key of allowed) {
    if (!Object.hasOwn(value, key)) throw fail(at, `missing "${key}"`);
  }
  for (const key of Object.keys(value)) {
    if (!allowed.includes(key)) throw fail(at, `unknown key "${key}"`);
  }
}
