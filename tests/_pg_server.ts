/**
 * A throwaway PostgreSQL 15 server for tests: a fresh cluster in a temporary folder, listening
 * on 127.0.0.1 at a free port and on a unix socket in that folder, with one role per
 * authentication method. initdb refuses to run as root, so as root the cluster belongs to the
 * `postgres` user and every server program runs through `runuser -u postgres --`.
 *
 * Roles (database `stratos`, owned by `scram_user`; every role may use it):
 * - `trust_user`: no password (pg_hba `trust`)
 * - `scram_user` / `SCRAM_PASSWORD`: `scram-sha-256`
 * - `md5_user` / `MD5_PASSWORD`: `md5`, the password stored as an MD5 hash
 * - `clear_user` / `CLEAR_PASSWORD`: `password` (cleartext)
 * - `postgres`: superuser, trust, unix socket and TCP
 *
 * @module
 */

/** Where Debian puts PostgreSQL 15's programs; `STRATOS_PG_BIN` overrides. */
export const PG_BIN: string = Deno.env.get("STRATOS_PG_BIN") ?? "/usr/lib/postgresql/15/bin";

/** Passwords of the test roles (throwaway values for a throwaway cluster). */
export const SCRAM_PASSWORD = "scr4m-pässwörd";
export const MD5_PASSWORD = "md5-secret";
export const CLEAR_PASSWORD = "clear-secret";
/** The test database. */
export const DATABASE = "stratos";

/** Why PostgreSQL tests cannot run here, or undefined when they can. */
export function pgUnavailable(): string | undefined {
  for (const tool of ["initdb", "postgres", "pg_ctl", "psql"]) {
    try {
      Deno.statSync(`${PG_BIN}/${tool}`);
    } catch {
      return `PostgreSQL 15 is not installed (no ${PG_BIN}/${tool}); ` +
        "apt-get install postgresql (.ci/run does), or set STRATOS_PG_BIN";
    }
  }
  return undefined;
}

async function run(cmd: string[], what: string): Promise<string> {
  const out = await new Deno.Command(cmd[0]!, {
    args: cmd.slice(1),
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    throw new Error(
      `${what} failed (${cmd.join(" ")}):\n${text}${new TextDecoder().decode(out.stderr)}`,
    );
  }
  return text;
}

/** A free TCP port on 127.0.0.1 (closed again at once; the server takes it next). */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** Options of {@linkcode PgServer.start}. */
export interface PgServerOptions {
  /**
   * Also accept TLS (`ssl=on`) with a server certificate for 127.0.0.1 signed by a throwaway CA
   * ({@linkcode PgServer.caFile}).
   */
  readonly tls?: boolean;
}

/** A running throwaway cluster. */
export class PgServer {
  /** TCP port on 127.0.0.1. */
  readonly port: number;
  /** The cluster folder; the unix socket `.s.PGSQL.<port>` lives here too. */
  readonly dir: string;
  readonly #asPostgres: string[];
  readonly #tls: boolean;
  #child: Deno.ChildProcess | undefined;

  private constructor(dir: string, port: number, asPostgres: string[], tls: boolean) {
    this.dir = dir;
    this.port = port;
    this.#asPostgres = asPostgres;
    this.#tls = tls;
  }

  /** The throwaway CA's certificate (PEM), when started with `tls`. */
  get caFile(): string {
    return `${this.dir}/tls/ca.pem`;
  }

  /** Creates the cluster, starts it, creates the roles and database. */
  static async start(options: PgServerOptions = {}): Promise<PgServer> {
    // `id -u` rather than Deno.uid(): the test task has no --allow-sys.
    const root = (await run(["id", "-u"], "id -u")).trim() === "0";
    const asPostgres = root ? ["runuser", "-u", "postgres", "--"] : [];
    const dir = await Deno.makeTempDir({ prefix: "stratos-pg-" });
    if (root) {
      const uid = Number((await run(["id", "-u", "postgres"], "id -u postgres")).trim());
      const gid = Number((await run(["id", "-g", "postgres"], "id -g postgres")).trim());
      await Deno.chown(dir, uid, gid);
    }
    const server = new PgServer(dir, freePort(), asPostgres, options.tls ?? false);
    await run(
      [
        ...asPostgres,
        `${PG_BIN}/initdb`,
        "-D",
        `${dir}/data`,
        "-U",
        "postgres",
        "--auth=trust",
        "--encoding=UTF8",
        "--no-sync",
      ],
      "initdb",
    );
    const hba = [
      "# TYPE DATABASE USER ADDRESS METHOD",
      "local all all trust",
      "host all postgres 127.0.0.1/32 trust",
      "host all trust_user 127.0.0.1/32 trust",
      "host all scram_user 127.0.0.1/32 scram-sha-256",
      "host all md5_user 127.0.0.1/32 md5",
      "host all clear_user 127.0.0.1/32 password",
      "",
    ].join("\n");
    // Written through the postgres user's shell: the data folder is 0700 and its own.
    await run(
      [...asPostgres, "sh", "-c", `cat > '${dir}/data/pg_hba.conf' <<'EOF'\n${hba}EOF`],
      "pg_hba",
    );
    if (server.#tls) await server.#makeCertificates();
    await server.#launch();
    try {
      await server.#setUp();
    } catch (e) {
      await server.dispose();
      throw e;
    }
    return server;
  }

  async #setUp(): Promise<void> {
    await this.psql(`
      SET password_encryption = 'scram-sha-256';
      CREATE ROLE scram_user LOGIN PASSWORD '${SCRAM_PASSWORD}';
      CREATE ROLE trust_user LOGIN;
      CREATE ROLE clear_user LOGIN PASSWORD '${CLEAR_PASSWORD}';
      SET password_encryption = 'md5';
      CREATE ROLE md5_user LOGIN PASSWORD '${MD5_PASSWORD}';
    `);
    await this.psql(`CREATE DATABASE ${DATABASE} OWNER scram_user`);
    await this.psql(
      `GRANT ALL ON SCHEMA public TO PUBLIC; GRANT ALL ON DATABASE ${DATABASE} TO PUBLIC;`,
      DATABASE,
    );
  }

  /** A postgres:// URL for `user` (with `password` if given) over TCP. */
  url(user: string, password?: string, query = ""): string {
    const auth = password === undefined ? user : `${user}:${encodeURIComponent(password)}`;
    return `postgres://${auth}@127.0.0.1:${this.port}/${DATABASE}${query ? `?${query}` : ""}`;
  }

  /** Runs SQL as the superuser through psql over the unix socket; returns psql's output, trimmed. */
  async psql(sql: string, database = "postgres"): Promise<string> {
    return (await run(
      [
        ...this.#asPostgres,
        `${PG_BIN}/psql`,
        "-X",
        "-q",
        "-t",
        "-A",
        "-v",
        "ON_ERROR_STOP=1",
        "-h",
        this.dir,
        "-p",
        String(this.port),
        "-U",
        "postgres",
        "-d",
        database,
        "-c",
        sql,
      ],
      "psql",
    )).trim();
  }

  /** Stops the server (fast shutdown: sessions are ended). */
  async stop(): Promise<void> {
    const child = this.#child;
    if (!child) return;
    this.#child = undefined;
    await run(
      [
        ...this.#asPostgres,
        `${PG_BIN}/pg_ctl`,
        "-D",
        `${this.dir}/data`,
        "-m",
        "fast",
        "-w",
        "stop",
      ],
      "pg_ctl stop",
    ).catch(() => child.kill("SIGKILL"));
    await child.status;
  }

  /** Starts it again on the same port and folder. */
  async restart(): Promise<void> {
    await this.stop();
    await this.#launch();
  }

  /** Stops the server and deletes the cluster. */
  async dispose(): Promise<void> {
    await this.stop();
    await Deno.remove(this.dir, { recursive: true });
  }

  /** A CA and a server certificate for 127.0.0.1 (P-256, valid one day), owned by postgres. */
  async #makeCertificates(): Promise<void> {
    const script = [
      "set -e",
      `mkdir -p '${this.dir}/tls'`,
      `cd '${this.dir}/tls'`,
      "printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > server.ext",
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes " +
      "-keyout ca.key -out ca.pem -days 1 -subj /CN=stratos-test-ca 2>/dev/null",
      "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes " +
      "-keyout server.key -out server.csr -subj /CN=127.0.0.1 2>/dev/null",
      "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial " +
      "-out server.pem -days 1 -extfile server.ext 2>/dev/null",
      "chmod 600 server.key ca.key",
    ].join("\n");
    await run([...this.#asPostgres, "sh", "-c", script], "openssl (test certificates)");
  }

  async #launch(): Promise<void> {
    const tls = this.#tls
      ? [
        "-c",
        "ssl=on",
        "-c",
        `ssl_cert_file=${this.dir}/tls/server.pem`,
        "-c",
        `ssl_key_file=${this.dir}/tls/server.key`,
      ]
      : [];
    this.#child = new Deno.Command(this.#asPostgres[0] ?? `${PG_BIN}/postgres`, {
      args: [
        ...this.#asPostgres.slice(1),
        ...(this.#asPostgres.length ? [`${PG_BIN}/postgres`] : []),
        "-D",
        `${this.dir}/data`,
        "-h",
        "127.0.0.1",
        "-p",
        String(this.port),
        "-k",
        this.dir,
        "-c",
        "fsync=off",
        "-c",
        "synchronous_commit=off",
        "-c",
        "full_page_writes=off",
        "-c",
        "logging_collector=off",
        ...tls,
      ],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    const deadline = Date.now() + 30_000;
    for (;;) {
      const ready = await new Deno.Command(`${PG_BIN}/pg_isready`, {
        args: ["-q", "-h", "127.0.0.1", "-p", String(this.port)],
        stdout: "null",
        stderr: "null",
      }).output();
      if (ready.success) return;
      if (Date.now() > deadline) throw new Error(`PostgreSQL did not start on port ${this.port}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
