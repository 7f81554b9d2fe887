/**
 * The client side of SCRAM-SHA-256 (RFC 5802, RFC 7677) as PostgreSQL uses it (PostgreSQL docs
 * §55.3.2, "SCRAM-SHA-256 Authentication"): no channel binding (gs2 header `n,,`), and an empty
 * user name in the first message because the server takes the one from the startup message.
 *
 * ```
 * client-first  n,,n=<user>,r=<client nonce>
 * server-first  r=<client nonce + server nonce>,s=<base64 salt>,i=<iterations>
 * client-final  c=biws,r=<nonce>,p=<base64 ClientKey XOR HMAC(StoredKey, AuthMessage)>
 * server-final  v=<base64 HMAC(ServerKey, AuthMessage)>     (or e=<error>)
 * ```
 *
 * @module
 */

import { timingSafeEqual } from "node:crypto";

/** SHA-256 output size, and so the size of every key and signature here. */
const HASH_LEN = 32;
/** Client nonce length in random bytes (base64 gives 24 printable characters). */
const NONCE_BYTES = 18;
/**
 * Most PBKDF2 iterations accepted from a server: PostgreSQL's default is 4096; a hostile server
 * asking for billions would make the client spin.
 */
export const MAX_ITERATIONS = 1_000_000;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Options of a {@linkcode ScramClient}. */
export interface ScramClientOptions {
  /** User name sent in client-first (PostgreSQL ignores it; default empty). */
  readonly username?: string;
  /** The client nonce; test-only seam for RFC 7677's vector. Default: 18 random bytes, base64. */
  readonly nonceForTesting?: string;
}

/** One SCRAM-SHA-256 exchange. */
export class ScramClient {
  readonly #password: string;
  readonly #clientFirstBare: string;
  readonly #nonce: string;
  #expectedServerSignature: Uint8Array | undefined;

  constructor(password: string, options: ScramClientOptions = {}) {
    this.#password = saslPrep(password);
    this.#nonce = options.nonceForTesting ??
      btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(NONCE_BYTES))));
    const user = (options.username ?? "").replaceAll("=", "=3D").replaceAll(",", "=2C");
    this.#clientFirstBare = `n=${user},r=${this.#nonce}`;
  }

  /** The client-first message. */
  clientFirst(): string {
    return `n,,${this.#clientFirstBare}`;
  }

  /**
   * Answers server-first with client-final.
   *
   * @throws {Error} a malformed server-first, a nonce that does not extend ours, or a bad
   *   iteration count
   */
  async clientFinal(serverFirst: string): Promise<string> {
    const attrs = attributes(serverFirst);
    const nonce = attrs.get("r");
    const salt = attrs.get("s");
    const iterations = Number(attrs.get("i"));
    if (!nonce || salt === undefined || !attrs.has("i")) {
      throw new Error("SCRAM: the server's first message lacks r, s or i");
    }
    if (!nonce.startsWith(this.#nonce) || nonce.length === this.#nonce.length) {
      throw new Error("SCRAM: the server's nonce does not extend the client's");
    }
    if (!Number.isInteger(iterations) || iterations < 1 || iterations > MAX_ITERATIONS) {
      throw new Error(`SCRAM: iteration count ${attrs.get("i")} is outside 1..${MAX_ITERATIONS}`);
    }
    let saltBytes: Uint8Array;
    try {
      saltBytes = Uint8Array.from(atob(salt), (c) => c.charCodeAt(0));
    } catch {
      throw new Error("SCRAM: the server's salt is not base64");
    }
    const salted = await pbkdf2(encoder.encode(this.#password), saltBytes, iterations);
    const clientKey = await hmac(salted, "Client Key");
    const storedKey = new Uint8Array(
      await crypto.subtle.digest("SHA-256", clientKey as Uint8Array<ArrayBuffer>),
    );
    const withoutProof = `c=biws,r=${nonce}`;
    const authMessage = `${this.#clientFirstBare},${serverFirst},${withoutProof}`;
    const clientSignature = await hmac(storedKey, authMessage);
    const proof = clientKey.map((b, i) => b ^ clientSignature[i]!);
    const serverKey = await hmac(salted, "Server Key");
    this.#expectedServerSignature = await hmac(serverKey, authMessage);
    salted.fill(0);
    clientKey.fill(0);
    storedKey.fill(0);
    serverKey.fill(0);
    return `${withoutProof},p=${btoa(String.fromCharCode(...proof))}`;
  }

  /**
   * Checks server-final: the server proves it knew the password too (constant-time compare).
   *
   * @throws {Error} an `e=` error, a missing or wrong signature
   */
  verifyServerFinal(serverFinal: string): void {
    const attrs = attributes(serverFinal);
    const error = attrs.get("e");
    if (error !== undefined) throw new Error(`SCRAM: the server reported "${error}"`);
    const v = attrs.get("v");
    const expected = this.#expectedServerSignature;
    if (v === undefined || expected === undefined) {
      throw new Error("SCRAM: the server's final message has no signature");
    }
    let got: Uint8Array;
    try {
      got = Uint8Array.from(atob(v), (c) => c.charCodeAt(0));
    } catch {
      throw new Error("SCRAM: the server's signature is not base64");
    }
    if (got.length !== HASH_LEN || !timingSafeEqual(got, expected)) {
      throw new Error(
        "SCRAM: the server's signature is wrong: it does not know the password (a spoofed server?)",
      );
    }
  }
}

/** `k=v,k=v` attributes of a SCRAM message (values may contain `=`). */
function attributes(message: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of message.split(",")) {
    const eq = part.indexOf("=");
    if (eq === 1) out.set(part[0]!, part.slice(2));
  }
  return out;
}

async function pbkdf2(password: Uint8Array, salt: Uint8Array, iterations: number) {
  const key = await crypto.subtle.importKey(
    "raw",
    password as Uint8Array<ArrayBuffer>,
    "PBKDF2",
    false,
    ["deriveBits"],
  );
  const bits = await crypto.subtle.deriveBits(
    { name: "PBKDF2", hash: "SHA-256", salt: salt as Uint8Array<ArrayBuffer>, iterations },
    key,
    HASH_LEN * 8,
  );
  return new Uint8Array(bits);
}

async function hmac(key: Uint8Array, message: string | Uint8Array): Promise<Uint8Array> {
  const k = await crypto.subtle.importKey(
    "raw",
    key as Uint8Array<ArrayBuffer>,
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const data = typeof message === "string" ? encoder.encode(message) : message;
  return new Uint8Array(await crypto.subtle.sign("HMAC", k, data as Uint8Array<ArrayBuffer>));
}

/** RFC 3454 C.1.2: non-ASCII spaces, mapped to a space by SASLprep (RFC 4013 §2.1). */
const NON_ASCII_SPACE = /[\u00A0\u1680\u2000-\u200B\u202F\u205F\u3000]/g;
/** RFC 3454 B.1: "commonly mapped to nothing". */
const MAPPED_TO_NOTHING = /[\u00AD\u034F\u1806\u180B-\u180D\u200C\u200D\u2060\uFE00-\uFE0F\uFEFF]/g;
/** RFC 3454 C.2-C.9 in the ranges that matter for passwords: controls, private use, etc. */
const PROHIBITED =
  // deno-lint-ignore no-control-regex
  /[\u0000-\u001F\u007F-\u009F\u06DD\u070F\u180E\u2028\u2029\u2060-\u2063\u206A-\u206F\uFFF9-\uFFFC\uE000-\uF8FF\uFFFE\uFFFF\uD800-\uDFFF\u0340\u0341\u200E\u200F\u202A-\u202E]/;

/**
 * SASLprep (RFC 4013) of a password, as PostgreSQL's server applies it: ASCII passwords pass
 * unchanged; a password that SASLprep would reject is used as its raw bytes (PostgreSQL does the
 * same, so both sides agree).
 */
export function saslPrep(password: string): string {
  // deno-lint-ignore no-control-regex
  if (/^[\u0000-\u007F]*$/.test(password)) return password;
  const prepared = password.replace(NON_ASCII_SPACE, " ").replace(MAPPED_TO_NOTHING, "")
    .normalize("NFKC");
  if (prepared === "" || PROHIBITED.test(prepared)) return password;
  return prepared;
}

/** Decodes a SASL payload received from the server. */
export function saslText(bytes: Uint8Array): string {
  return decoder.decode(bytes);
}
