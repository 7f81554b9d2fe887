/**
 * Where and how to reach a PostgreSQL server, and the parser of libpq-style connection strings
 * that gives it (PostgreSQL docs §34.1.1 "Connection Strings"): a URL
 * `postgres://user:password@host:port/database?sslmode=require` or keyword/value pairs
 * `host=db user=app password='p w' dbname=app`.
 *
 * @module
 */

/** How the connection is secured: `disable` (plain), or TLS verified against trusted roots. */
export type SslMode = "disable" | "require" | "verify-ca" | "verify-full";

/** A resolved connection target. */
export interface PostgresConfig {
  /** Host name or IP address (for TCP). */
  readonly hostname: string;
  /** TCP port, or the number in the socket file name `.s.PGSQL.<port>`. Default 5432. */
  readonly port: number;
  /** A unix-domain socket file; when set, used instead of TCP. */
  readonly socketPath?: string;
  /** The role to log in as. */
  readonly user: string;
  /** The password, if the server asks for one. */
  readonly password?: string;
  /** Database name; default: the user name. */
  readonly database: string;
  /**
   * `disable` (also what `prefer`, `allow` and no sslmode at all become: plain TCP), `require`,
   * `verify-ca`, `verify-full`. Every TLS mode verifies the server's certificate against the
   * system roots (plus `sslRootCert`) and its name: Deno's TLS has no unverified mode, so
   * `require` is stricter here than in libpq.
   */
  readonly sslMode: SslMode;
  /** PEM file of extra trusted roots for TLS (`sslrootcert`). */
  readonly sslRootCert?: string;
  /** `application_name` reported to the server; default `stratos`. */
  readonly applicationName: string;
  /** Connect (and authenticate) timeout in milliseconds (`connect_timeout`, seconds), if set. */
  readonly connectTimeoutMs?: number;
  /** Pool size (`pool_max_conns`, as pgx names it), if set. */
  readonly poolMaxConns?: number;
}

/** Connection-string options understood, beyond host/port/user/password/dbname. */
const OPTIONS = [
  "host",
  "hostaddr",
  "port",
  "user",
  "password",
  "dbname",
  "sslmode",
  "sslrootcert",
  "connect_timeout",
  "application_name",
  "pool_max_conns",
] as const;

const SSL_MODES = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"];

/**
 * Parses a PostgreSQL connection string (URL or keyword/value form).
 *
 * @param text the connection string, e.g. `postgres://app:secret@127.0.0.1:5432/app`
 * @returns the resolved target
 * @throws {SyntaxError} unparseable text
 * @throws {TypeError} an unsupported option, a missing user, a bad value (the message names the
 *   fix; it never contains the password)
 * @example
 * ```ts
 * const config = parsePostgresConfig("postgres://app@127.0.0.1/app?sslmode=require");
 * config.sslMode; // "require"
 * ```
 */
export function parsePostgresConfig(text: string): PostgresConfig {
  const raw = /^postgres(?:ql)?:\/\//.test(text) ? fromUrl(text) : fromKeywords(text);
  for (const key of Object.keys(raw)) {
    if (!(OPTIONS as readonly string[]).includes(key)) {
      throw new TypeError(
        `connection string: unsupported option "${key}"; supported: ${OPTIONS.join(", ")}`,
      );
    }
  }
  const user = raw.user;
  if (!user) {
    throw new TypeError(
      'connection string: no user; write it as "postgres://USER:PASSWORD@host:port/database"',
    );
  }
  const port = raw.port === undefined ? 5432 : Number(raw.port);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new TypeError(`connection string: port "${raw.port}" is not a number in 1..65535`);
  }
  const host = raw.hostaddr || raw.host || "localhost";
  if (host.includes(",")) {
    throw new TypeError(
      `connection string: several hosts ("${host}") are not supported; name one host`,
    );
  }
  const sslRaw = raw.sslmode ?? "disable";
  if (!SSL_MODES.includes(sslRaw)) {
    throw new TypeError(
      `connection string: sslmode "${sslRaw}" is not one of ${SSL_MODES.join(", ")}`,
    );
  }
  const sslMode: SslMode = sslRaw === "allow" || sslRaw === "prefer"
    ? "disable"
    : sslRaw as SslMode;
  const socketPath = host.startsWith("/")
    ? `${host.replace(/\/+$/, "")}/.s.PGSQL.${port}`
    : undefined;
  if (socketPath && sslMode !== "disable") {
    throw new TypeError(
      `connection string: sslmode "${sslRaw}" over a unix socket is not supported; ` +
        "use sslmode=disable with host=/socket/dir",
    );
  }
  return {
    hostname: socketPath ? "localhost" : host.replace(/^\[(.*)\]$/, "$1"),
    port,
    ...(socketPath ? { socketPath } : {}),
    user,
    ...(raw.password !== undefined ? { password: raw.password } : {}),
    database: raw.dbname || user,
    sslMode,
    ...(raw.sslrootcert ? { sslRootCert: raw.sslrootcert } : {}),
    applicationName: raw.application_name ?? "stratos",
    ...(raw.connect_timeout !== undefined
      ? { connectTimeoutMs: positive(raw.connect_timeout, "connect_timeout") * 1000 }
      : {}),
    ...(raw.pool_max_conns !== undefined
      ? { poolMaxConns: positive(raw.pool_max_conns, "pool_max_conns") }
      : {}),
  };
}

function positive(value: string, name: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) {
    throw new TypeError(`connection string: ${name} "${value}" is not a positive integer`);
  }
  return n;
}

function decode(part: string, what: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    throw new SyntaxError(`connection string: the ${what} has a bad %-escape`);
  }
}

/** `postgres://[user[:password]@][host][:port][/dbname][?key=value&...]` (§34.1.1.2). */
function fromUrl(text: string): Record<string, string> {
  const m = /^postgres(?:ql)?:\/\/(?:([^@/?#]*)@)?([^/?#]*)(?:\/([^?#]*))?(?:\?([^#]*))?$/.exec(
    text,
  );
  if (!m) {
    throw new SyntaxError(
      "connection string: not a URL of the form postgres://user:password@host:port/database",
    );
  }
  const [, userinfo, hostport = "", path, query] = m;
  const out: Record<string, string> = {};
  if (userinfo !== undefined) {
    const colon = userinfo.indexOf(":");
    const user = colon < 0 ? userinfo : userinfo.slice(0, colon);
    if (user) out.user = decode(user, "user");
    if (colon >= 0) out.password = decode(userinfo.slice(colon + 1), "password");
  }
  const hp = /^(\[[^\]]*\]|[^:]*)(?::(\d*))?$/.exec(hostport);
  if (!hp) throw new SyntaxError(`connection string: bad host and port "${hostport}"`);
  if (hp[1]) out.host = decode(hp[1], "host");
  if (hp[2]) out.port = hp[2];
  if (path) out.dbname = decode(path, "database name");
  for (const pair of (query ?? "").split("&")) {
    if (pair === "") continue;
    const eq = pair.indexOf("=");
    if (eq < 0) throw new SyntaxError(`connection string: query part "${pair}" has no "="`);
    const key = decode(pair.slice(0, eq), "option name");
    out[key] = decode(pair.slice(eq + 1).replaceAll("+", " "), `option ${key}`);
  }
  return out;
}

/** `key=value key='quoted \' value'` (§34.1.1.1). */
function fromKeywords(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  let at = 0;
  const skip = () => {
    while (at < text.length && /\s/.test(text[at]!)) at++;
  };
  skip();
  if (at === text.length) {
    throw new SyntaxError(
      "connection string is empty; write postgres://user:password@host:port/database",
    );
  }
  while (at < text.length) {
    const key = /^[A-Za-z_][A-Za-z0-9_]*/.exec(text.slice(at))?.[0];
    if (!key) {
      throw new SyntaxError(
        `connection string: expected key=value at character ${at + 1}; ` +
          "or write postgres://user:password@host:port/database",
      );
    }
    at += key.length;
    skip();
    if (text[at] !== "=") throw new SyntaxError(`connection string: "${key}" has no "="`);
    at++;
    skip();
    let value = "";
    if (text[at] === "'") {
      at++;
      for (;;) {
        if (at >= text.length) {
          throw new SyntaxError(`connection string: unterminated quote in the value of "${key}"`);
        }
        const c = text[at++]!;
        if (c === "'") break;
        value += c === "\\" && at < text.length ? text[at++]! : c;
      }
    } else {
      while (at < text.length && !/\s/.test(text[at]!)) {
        const c = text[at++]!;
        value += c === "\\" && at < text.length ? text[at++]! : c;
      }
    }
    out[key] = value;
    skip();
  }
  return out;
}
