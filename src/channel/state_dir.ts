/**
 * Where a node keeps its key material and trust state, and how it reads and writes it safely.
 *
 * Layout: `$STRATOS_HOME/<role>/` (default `$HOME/.stratos/<role>/`), created with mode 0700.
 * Secret files are 0600 and written atomically (temp file in the same folder, fsync, rename),
 * so a crash leaves either the old or the new file, never half of one. A secret file that
 * group or others may access is refused with the `chmod` that fixes it.
 *
 * Identity key file (`identity.key`), one line of ASCII:
 *
 * ```
 * stratos-identity-v1 <standard base64 of the 32-byte Ed25519 seed, with padding>\n
 * ```
 *
 * On Windows, where Deno reports no POSIX mode, the permission checks are skipped.
 *
 * @module
 */

import { basename, dirname, join } from "node:path";
import type { CryptoBackend } from "./crypto_backend.ts";
import { SIGNATURE_SECRET_KEY_LEN } from "./crypto_backend.ts";
import { Identity } from "./identity.ts";

/** The services that keep state, one subfolder each. */
export type Role = "relay" | "proxy" | "sat";

/** Every {@link Role}, for validation and help texts. */
export const ROLES: readonly Role[] = Object.freeze(["relay", "proxy", "sat"]);

/** Mode of a state folder: owner only. */
export const STATE_DIR_MODE = 0o700;
/** Mode of every file written here: owner read/write only. */
export const SECRET_FILE_MODE = 0o600;
/** Name of the identity key file inside a role's state folder. */
export const IDENTITY_FILE_NAME = "identity.key";
/** First word of the identity key file; the version is part of it. */
export const IDENTITY_FILE_HEADER = "stratos-identity-v1";

/** Permission bits for group and others: any of them makes a secret file unsafe. */
const GROUP_OTHER_BITS = 0o077;
/** Read bits for group and others. */
const GROUP_OTHER_READ_BITS = 0o044;
/** Write bits for group and others: these make any state file (pins!) forgeable. */
const GROUP_OTHER_WRITE_BITS = 0o022;
const IDENTITY_FILE_PATTERN = /^stratos-identity-v1 ([A-Za-z0-9+/]{43}=)\n?$/;
const TEMP_SUFFIX_BYTES = 8;

/**
 * A state file is unsafe or unusable: it grants permissions to other users, is not a regular
 * file, or its content is malformed. The message names the path and the fix.
 *
 * @example
 * ```ts
 * try {
 *   await readSecretFile(path);
 * } catch (error) {
 *   if (error instanceof StateFileError) console.error(error.message); // includes "chmod 600 …"
 * }
 * ```
 */
export class StateFileError extends Error {
  /** Always `"StateFileError"`. */
  override readonly name = "StateFileError";
  /** The file at fault. */
  readonly path: string;
  /** Its permission bits (`mode & 0o777`), when known. */
  readonly mode: number | undefined;

  /**
   * Creates the error; callers normally only catch it.
   *
   * @param message What failed and how to fix it.
   * @param path The file at fault.
   * @param mode Its permission bits, when known.
   * @param options `cause`.
   */
  constructor(message: string, path: string, mode: number | undefined, options?: ErrorOptions) {
    super(message, options);
    this.path = path;
    this.mode = mode;
  }
}

/** Options of {@link stateDirPath}. */
export interface StateDirOptions {
  /** Reads an environment variable; default `Deno.env.get`. */
  readonly env?: (name: string) => string | undefined;
}

/** Options of {@link writeSecretFile} and {@link writeStateFile}. */
export interface WriteFileOptions {
  /**
   * Fail with `Deno.errors.AlreadyExists` instead of replacing an existing file, atomically
   * (a hard link, which never overwrites). Default false.
   */
  readonly exclusive?: boolean;
}

/** Options of {@link loadOrCreateIdentity}. */
export interface LoadIdentityOptions {
  /** The crypto backend; default `defaultBackend()`. */
  readonly backend?: CryptoBackend;
}

/**
 * The state folder of a role: `$STRATOS_HOME/<role>`, or `$HOME/.stratos/<role>` when
 * STRATOS_HOME is unset or empty. Does not touch the file system.
 *
 * @param role `"relay"`, `"proxy"` or `"sat"`.
 * @param options `env` to read variables from (default `Deno.env.get`).
 * @returns The folder path.
 * @throws {TypeError} when `role` is not a {@link Role}.
 * @throws {Error} when neither STRATOS_HOME nor HOME is set; the message says what to set.
 * @example
 * ```ts
 * stateDirPath("sat", { env: (n) => ({ HOME: "/home/ada" })[n] }); // "/home/ada/.stratos/sat"
 * ```
 */
export function stateDirPath(role: Role, options: StateDirOptions = {}): string {
  if (!ROLES.includes(role)) {
    const valid = ROLES.map((r) => `"${r}"`).join(", ");
    throw new TypeError(`unknown role ${JSON.stringify(role)}: expected one of ${valid}`);
  }
  const env = options.env ?? ((name: string) => Deno.env.get(name));
  const stratosHome = env("STRATOS_HOME");
  if (stratosHome !== undefined && stratosHome !== "") return join(stratosHome, role);
  const home = env("HOME");
  if (home !== undefined && home !== "") return join(home, ".stratos", role);
  throw new Error(
    "cannot find where to keep Stratos keys: neither STRATOS_HOME nor HOME is set; " +
      "set one, e.g. STRATOS_HOME=/var/lib/stratos",
  );
}

/**
 * Creates a state folder (and its parents) with mode 0700 if it does not exist yet. An
 * existing folder is left as it is.
 *
 * @param path The folder, e.g. from {@link stateDirPath}.
 * @returns Nothing, once the folder exists.
 * @throws {Deno.errors.PermissionDenied} and other `Deno` errors when it cannot be created.
 * @throws {StateFileError} when `path` exists and is not a folder.
 * @example
 * ```ts
 * await ensureStateDir(stateDirPath("proxy"));
 * ```
 */
export async function ensureStateDir(path: string): Promise<void> {
  try {
    const info = await Deno.stat(path);
    if (!info.isDirectory) {
      throw new StateFileError(
        `${path}: exists but is not a folder; move it away so a state folder can be created`,
        path,
        modeOf(info),
      );
    }
    return;
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  await Deno.mkdir(path, { recursive: true, mode: STATE_DIR_MODE });
  // The umask may have narrowed the mode further, never widened it; set it exactly anyway.
  if (Deno.build.os !== "windows") await Deno.chmod(path, STATE_DIR_MODE);
}

function modeOf(info: Deno.FileInfo): number | undefined {
  return info.mode === null ? undefined : info.mode & 0o777;
}

function octal(mode: number): string {
  return "0" + mode.toString(8).padStart(3, "0");
}

/** Quotes `path` for a POSIX shell when it holds anything beyond the usual safe characters. */
function shellQuote(path: string): string {
  return /^[A-Za-z0-9_\-./=:,+@%]+$/.test(path) ? path : `'${path.replaceAll("'", `'\\''`)}'`;
}

/**
 * Opens `path` for reading and checks it through the open handle (no race with a rename):
 * a regular file whose mode has none of `forbiddenBits`. Undefined when absent.
 */
async function readCheckedFile(
  path: string,
  forbiddenBits: number,
  what: string,
): Promise<Uint8Array | undefined> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
  try {
    const info = await file.stat();
    const mode = modeOf(info);
    if (!info.isFile) {
      throw new StateFileError(
        `${path}: is not a regular file; move it away and let Stratos recreate it`,
        path,
        mode,
      );
    }
    if (mode !== undefined && (mode & forbiddenBits) !== 0) {
      const verb = (mode & GROUP_OTHER_READ_BITS & forbiddenBits) !== 0 ? "read" : "modify";
      throw new StateFileError(
        `${path}: mode ${octal(mode)} lets other users ${verb} ${what}; ` +
          `fix it with: chmod 600 ${shellQuote(path)}`,
        path,
        mode,
      );
    }
    return await readAll(file, info.size);
  } finally {
    file.close();
  }
}

async function readAll(file: Deno.FsFile, sizeHint: number): Promise<Uint8Array> {
  let buffer = new Uint8Array(Math.max(sizeHint, 64));
  let length = 0;
  for (;;) {
    if (length === buffer.length) {
      const bigger = new Uint8Array(buffer.length * 2);
      bigger.set(buffer);
      buffer.fill(0);
      buffer = bigger;
    }
    const n = await file.read(buffer.subarray(length));
    if (n === null) break;
    length += n;
  }
  const result = buffer.slice(0, length);
  buffer.fill(0);
  return result;
}

/**
 * Reads a secret file, refusing one that group or others may access in any way.
 *
 * @param path The file.
 * @returns Its bytes, or undefined when it does not exist.
 * @throws {StateFileError} (with `path` and `mode`) when the mode grants anything to group or
 *   others, e.g. `/x/.stratos/sat/identity.key: mode 0644 lets other users read this secret;
 *   fix it with: chmod 600 /x/.stratos/sat/identity.key`, or when it is not a regular file.
 * @throws {Deno.errors.PermissionDenied} and other `Deno` errors from reading.
 * @example
 * ```ts
 * const seed = await readSecretFile(join(dir, "identity.key"));
 * ```
 */
export function readSecretFile(path: string): Promise<Uint8Array | undefined> {
  return readCheckedFile(path, GROUP_OTHER_BITS, "this secret");
}

/**
 * Writes a file atomically with mode 0600: a new temp file in the same folder (created
 * exclusively, 0600), write, fsync, then rename over `path` (or hard-link with `exclusive`),
 * then fsync the folder. Readers see the old content or the new, never a mix; the temp file
 * is removed on failure.
 *
 * @param path The target file; its folder must exist.
 * @param data The bytes.
 * @param options `exclusive`: fail if `path` exists instead of replacing it.
 * @returns Nothing, once the data is durable.
 * @throws {Deno.errors.AlreadyExists} with `exclusive` when `path` exists.
 * @throws {Deno.errors.NotFound} when the folder does not exist, and other `Deno` errors.
 * @example
 * ```ts
 * await writeSecretFile(join(dir, "identity.key"), bytes);
 * ```
 */
export async function writeSecretFile(
  path: string,
  data: Uint8Array,
  options: WriteFileOptions = {},
): Promise<void> {
  const folder = dirname(path);
  const suffix = crypto.getRandomValues(new Uint8Array(TEMP_SUFFIX_BYTES)).toHex();
  const temp = join(folder, `.${basename(path)}.${suffix}.tmp`);
  const file = await Deno.open(temp, { write: true, createNew: true, mode: SECRET_FILE_MODE });
  let placed = false;
  try {
    try {
      let written = 0;
      while (written < data.length) written += await file.write(data.subarray(written));
      await file.sync();
    } finally {
      file.close();
    }
    if (options.exclusive) {
      // link(2) never replaces an existing target: the one race-free "create if absent".
      await Deno.link(temp, path);
    } else {
      await Deno.rename(temp, path);
      placed = true;
    }
  } finally {
    if (!placed) await Deno.remove(temp).catch(() => {});
  }
  await syncFolder(folder);
}

/** Makes a rename durable (POSIX: fsync the folder). Best effort: not every OS allows it. */
async function syncFolder(folder: string): Promise<void> {
  if (Deno.build.os === "windows") return;
  try {
    const dir = await Deno.open(folder, { read: true });
    try {
      await dir.sync();
    } finally {
      dir.close();
    }
  } catch {
    // The file itself is already synced; a folder fsync is an extra guarantee, not a need.
  }
}

/**
 * Reads a JSON state file (not secret, but it decides trust), refusing one that group or
 * others may write.
 *
 * @param path The file.
 * @returns The parsed JSON value, or undefined when the file does not exist.
 * @throws {StateFileError} when group or others may write it (with the `chmod` that fixes it)
 *   or it is not a regular file.
 * @throws {SyntaxError} naming the path when it is not valid UTF-8 JSON.
 * @example
 * ```ts
 * const state = await readStateFile(join(dir, "trust.json"));
 * ```
 */
export async function readStateFile(path: string): Promise<unknown> {
  const bytes = await readCheckedFile(path, GROUP_OTHER_WRITE_BITS, "this trust state");
  if (bytes === undefined) return undefined;
  try {
    return JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (error) {
    throw new SyntaxError(
      `${path}: not valid JSON (${(error as Error).message}); ` +
        "restore it from a backup or delete it to start over",
      { cause: error },
    );
  }
}

/**
 * Writes `value` as JSON (two-space indent, final newline) atomically with mode 0600, like
 * {@link writeSecretFile}.
 *
 * @param path The target file; its folder must exist.
 * @param value A JSON-serialisable value.
 * @param options `exclusive`: fail if `path` exists instead of replacing it.
 * @returns Nothing, once the data is durable.
 * @throws {TypeError} when `value` cannot be serialised (e.g. a BigInt or a cycle).
 * @throws `Deno` errors from writing, as {@link writeSecretFile}.
 * @example
 * ```ts
 * await writeStateFile(join(dir, "trust.json"), { version: 1, pins: [] });
 * ```
 */
export async function writeStateFile(
  path: string,
  value: unknown,
  options: WriteFileOptions = {},
): Promise<void> {
  const text = JSON.stringify(value, null, 2);
  if (text === undefined) {
    throw new TypeError(`${path}: refusing to write ${typeof value} as JSON`);
  }
  await writeSecretFile(path, new TextEncoder().encode(text + "\n"), options);
}

function encodeIdentityFile(seed: Uint8Array): Uint8Array {
  return new TextEncoder().encode(`${IDENTITY_FILE_HEADER} ${seed.toBase64()}\n`);
}

function decodeIdentityFile(path: string, bytes: Uint8Array): Uint8Array {
  // Never quote the content: it is a secret.
  const malformed = () =>
    new StateFileError(
      `${path}: not a Stratos identity key file (expected one line ` +
        `"${IDENTITY_FILE_HEADER} <base64 of ${SIGNATURE_SECRET_KEY_LEN} bytes>"); ` +
        "restore it from a backup, or delete it to create a new identity " +
        "(peers that pinned the old one will refuse the new one)",
      path,
      undefined,
    );
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw malformed();
  }
  const match = IDENTITY_FILE_PATTERN.exec(text);
  if (match === null) throw malformed();
  let seed: Uint8Array;
  try {
    // "strict" rejects non-zero padding bits: one key, one spelling.
    seed = Uint8Array.fromBase64(match[1]!, { lastChunkHandling: "strict" });
  } catch {
    throw malformed();
  }
  if (seed.length !== SIGNATURE_SECRET_KEY_LEN) throw malformed();
  return seed;
}

/**
 * Loads the node identity from `<dir>/identity.key`, or creates one there (0600, atomically)
 * on first run. Two processes starting at once end up with the same identity. Key bytes are
 * never logged nor put in error messages.
 *
 * @param dir The role's state folder (created with mode 0700 if absent).
 * @param options `backend` (default `defaultBackend()`).
 * @returns The identity.
 * @throws {StateFileError} when the key file is readable by others (with the `chmod` that
 *   fixes it) or malformed (naming the path).
 * @throws `Deno` errors from the file system.
 * @example
 * ```ts
 * const identity = await loadOrCreateIdentity(stateDirPath("sat"));
 * console.log(`identifier ${identity.identifier}`);
 * ```
 */
export async function loadOrCreateIdentity(
  dir: string,
  options: LoadIdentityOptions = {},
): Promise<Identity> {
  await ensureStateDir(dir);
  const path = join(dir, IDENTITY_FILE_NAME);
  const identityOptions = { backend: options.backend };
  const existing = await readSecretFile(path);
  if (existing !== undefined) return identityFromFile(path, existing, identityOptions);
  const identity = Identity.generate(identityOptions);
  const seed = identity.exportSecretKey();
  const bytes = encodeIdentityFile(seed);
  seed.fill(0);
  try {
    await writeSecretFile(path, bytes, { exclusive: true });
  } catch (error) {
    if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
    // Another process created it first: use theirs so both agree.
    const theirs = await readSecretFile(path);
    if (theirs === undefined) throw error;
    return identityFromFile(path, theirs, identityOptions);
  } finally {
    bytes.fill(0);
  }
  return identity;
}

/**
 * Loads the identity of a state folder without creating one.
 *
 * @param dir The role's state folder.
 * @returns The identity, or undefined when the folder has none yet.
 * @throws {StateFileError} when the key file is readable by others or malformed.
 * @example
 * ```ts
 * const identity = await loadIdentity(stateDirPath("proxy")); // undefined before the first start
 * ```
 */
export async function loadIdentity(
  dir: string,
  options: LoadIdentityOptions = {},
): Promise<Identity | undefined> {
  const path = join(dir, IDENTITY_FILE_NAME);
  const existing = await readSecretFile(path);
  return existing === undefined
    ? undefined
    : identityFromFile(path, existing, { backend: options.backend });
}

function identityFromFile(
  path: string,
  bytes: Uint8Array,
  options: { backend: CryptoBackend | undefined },
): Identity {
  try {
    const seed = decodeIdentityFile(path, bytes);
    try {
      return Identity.fromSecretKey(seed, options);
    } finally {
      seed.fill(0);
    }
  } finally {
    bytes.fill(0);
  }
}
