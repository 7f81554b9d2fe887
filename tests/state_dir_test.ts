import assert from "node:assert/strict";
import { join } from "node:path";
import {
  ensureStateDir,
  IDENTITY_FILE_NAME,
  loadOrCreateIdentity,
  readSecretFile,
  readStateFile,
  stateDirPath,
  StateFileError,
  writeSecretFile,
  writeStateFile,
} from "../src/channel/state_dir.ts";

const IS_POSIX = Deno.build.os !== "windows";

function envOf(vars: Record<string, string>): (name: string) => string | undefined {
  return (name) => vars[name];
}

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "stratos-state-test-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function modeOf(path: string): Promise<number> {
  return (await Deno.stat(path)).mode! & 0o777;
}

Deno.test("stateDirPath puts each role under STRATOS_HOME, else under HOME/.stratos", async (t) => {
  await t.step("STRATOS_HOME wins over HOME", () => {
    const env = envOf({ STRATOS_HOME: "/srv/stratos", HOME: "/home/ada" });
    assert.equal(stateDirPath("sat", { env }), join("/srv/stratos", "sat"));
    assert.equal(stateDirPath("proxy", { env }), join("/srv/stratos", "proxy"));
    assert.equal(stateDirPath("relay", { env }), join("/srv/stratos", "relay"));
  });

  await t.step("HOME/.stratos when STRATOS_HOME is unset", () => {
    assert.equal(
      stateDirPath("sat", { env: envOf({ HOME: "/home/ada" }) }),
      join("/home/ada", ".stratos", "sat"),
    );
  });

  await t.step("an empty STRATOS_HOME counts as unset", () => {
    assert.equal(
      stateDirPath("proxy", { env: envOf({ STRATOS_HOME: "", HOME: "/home/ada" }) }),
      join("/home/ada", ".stratos", "proxy"),
    );
  });

  await t.step("neither set is a clear error naming both variables", () => {
    const cases: readonly Record<string, string>[] = [{}, { STRATOS_HOME: "", HOME: "" }];
    for (const vars of cases) {
      assert.throws(
        () => stateDirPath("sat", { env: envOf(vars) }),
        (error: unknown) =>
          error instanceof Error && /STRATOS_HOME/.test(error.message) &&
          /HOME is set/.test(error.message),
      );
    }
  });

  await t.step("an unknown role is a TypeError quoting it", () => {
    assert.throws(
      () => stateDirPath("client" as "sat", { env: envOf({ HOME: "/h" }) }),
      (error: unknown) => error instanceof TypeError && error.message.includes('"client"'),
    );
  });
});

Deno.test("ensureStateDir creates the folder with mode 0700", async (t) => {
  await withTempDir(async (root) => {
    await t.step("nested folders are created, the leaf is 0700", async () => {
      const dir = join(root, "home", ".stratos", "sat");
      await ensureStateDir(dir);
      assert.ok((await Deno.stat(dir)).isDirectory);
      if (IS_POSIX) assert.equal(await modeOf(dir), 0o700);
    });

    await t.step("an existing folder is left as it is", async () => {
      const dir = join(root, "existing");
      await Deno.mkdir(dir);
      await Deno.chmod(dir, 0o750);
      await ensureStateDir(dir);
      if (IS_POSIX) assert.equal(await modeOf(dir), 0o750);
    });

    await t.step("a file in the way is a StateFileError", async () => {
      const path = join(root, "a-file");
      await Deno.writeTextFile(path, "x");
      await assert.rejects(ensureStateDir(path), StateFileError);
    });
  });
});

Deno.test("Secret files are written 0600 and atomically, and read back", async (t) => {
  await withTempDir(async (dir) => {
    const path = join(dir, "identity.key");

    await t.step("a missing file reads as undefined", async () => {
      assert.equal(await readSecretFile(path), undefined);
    });

    await t.step("a written file has mode 0600 and reads back", async () => {
      await writeSecretFile(path, new Uint8Array([1, 2, 3]));
      if (IS_POSIX) assert.equal(await modeOf(path), 0o600);
      assert.deepEqual(await readSecretFile(path), new Uint8Array([1, 2, 3]));
    });

    await t.step("rewriting replaces the content and leaves no temp files", async () => {
      for (let i = 0; i < 20; i++) {
        await writeSecretFile(path, new Uint8Array(1000).fill(i));
      }
      assert.deepEqual(await readSecretFile(path), new Uint8Array(1000).fill(19));
      const names = (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name);
      assert.deepEqual(names, ["identity.key"]);
    });

    await t.step("an empty file round-trips", async () => {
      const empty = join(dir, "empty");
      await writeSecretFile(empty, new Uint8Array());
      assert.deepEqual(await readSecretFile(empty), new Uint8Array());
      await Deno.remove(empty);
    });

    await t.step("exclusive refuses to replace an existing file and cleans up", async () => {
      await assert.rejects(
        writeSecretFile(path, new Uint8Array([9]), { exclusive: true }),
        Deno.errors.AlreadyExists,
      );
      assert.deepEqual(await readSecretFile(path), new Uint8Array(1000).fill(19));
      const names = (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name);
      assert.deepEqual(names, ["identity.key"]);
    });

    await t.step("writing into a missing folder fails and leaves nothing", async () => {
      await assert.rejects(
        writeSecretFile(join(dir, "missing", "x"), new Uint8Array([1])),
        Deno.errors.NotFound,
      );
    });
  });
});

Deno.test("A secret file that other users may access is refused with the chmod that fixes it", {
  ignore: !IS_POSIX,
}, async (t) => {
  await withTempDir(async (dir) => {
    const path = join(dir, "identity.key");
    await writeSecretFile(path, new Uint8Array([1, 2, 3]));

    await t.step("mode 0644 is refused, naming the path, the mode and the fix", async () => {
      await Deno.chmod(path, 0o644);
      await assert.rejects(readSecretFile(path), (error: unknown) => {
        assert.ok(error instanceof StateFileError);
        assert.equal(error.name, "StateFileError");
        assert.equal(error.path, path);
        assert.equal(error.mode, 0o644);
        assert.equal(
          error.message,
          `${path}: mode 0644 lets other users read this secret; fix it with: chmod 600 ${path}`,
        );
        return true;
      });
    });

    for (const mode of [0o640, 0o604, 0o620, 0o602, 0o610, 0o601, 0o660, 0o666, 0o700 | 0o077]) {
      await t.step(`mode 0${mode.toString(8)} is refused`, async () => {
        await Deno.chmod(path, mode);
        await assert.rejects(readSecretFile(path), StateFileError);
      });
    }

    await t.step("write-only access for others is described as modify", async () => {
      await Deno.chmod(path, 0o620);
      await assert.rejects(readSecretFile(path), /lets other users modify this secret/);
    });

    for (const mode of [0o600, 0o400]) {
      await t.step(`mode 0${mode.toString(8)} is accepted`, async () => {
        await Deno.chmod(path, mode);
        assert.deepEqual(await readSecretFile(path), new Uint8Array([1, 2, 3]));
      });
    }

    await t.step("a path with a space is quoted in the hint", async () => {
      const spaced = join(dir, "my key");
      await writeSecretFile(spaced, new Uint8Array([1]));
      await Deno.chmod(spaced, 0o644);
      await assert.rejects(readSecretFile(spaced), (error: unknown) => {
        assert.ok(error instanceof StateFileError);
        assert.ok(error.message.endsWith(`chmod 600 '${spaced}'`), error.message);
        return true;
      });
    });

    await t.step("a folder where a secret file should be is refused", async () => {
      const folder = join(dir, "folder");
      await Deno.mkdir(folder, { mode: 0o700 });
      await assert.rejects(readSecretFile(folder), StateFileError);
    });
  });
});

Deno.test("JSON state files round-trip and a group-writable one is refused", async (t) => {
  await withTempDir(async (dir) => {
    const path = join(dir, "trust.json");

    await t.step("missing reads as undefined", async () => {
      assert.equal(await readStateFile(path), undefined);
    });

    await t.step("written 0600 and read back", async () => {
      await writeStateFile(path, { version: 1, pins: ["a"] });
      if (IS_POSIX) assert.equal(await modeOf(path), 0o600);
      assert.deepEqual(await readStateFile(path), { version: 1, pins: ["a"] });
    });

    await t.step({
      name: "world-readable is fine, group- or world-writable is not",
      ignore: !IS_POSIX,
      fn: async () => {
        await Deno.chmod(path, 0o644);
        assert.deepEqual(await readStateFile(path), { version: 1, pins: ["a"] });
        await Deno.chmod(path, 0o664);
        await assert.rejects(readStateFile(path), /lets other users modify .* chmod 600/);
        await Deno.chmod(path, 0o600);
      },
    });

    await t.step("invalid JSON is a SyntaxError naming the path", async () => {
      await writeSecretFile(path, new TextEncoder().encode("{nope"));
      await assert.rejects(
        readStateFile(path),
        (error: unknown) => error instanceof SyntaxError && error.message.startsWith(path),
      );
    });
  });
});

Deno.test("loadOrCreateIdentity creates identity.key once and loads it after", async (t) => {
  await withTempDir(async (root) => {
    const dir = join(root, ".stratos", "sat");
    const path = join(dir, IDENTITY_FILE_NAME);

    await t.step("first load creates the folder 0700 and the key file 0600", async () => {
      const identity = await loadOrCreateIdentity(dir);
      if (IS_POSIX) {
        assert.equal(await modeOf(dir), 0o700);
        assert.equal(await modeOf(path), 0o600);
      }
      const text = await Deno.readTextFile(path);
      assert.match(text, /^stratos-identity-v1 [A-Za-z0-9+/]{43}=\n$/);
      assert.equal(text, `stratos-identity-v1 ${identity.exportSecretKey().toBase64()}\n`);
    });

    await t.step("the identity persists across two loads", async () => {
      const a = await loadOrCreateIdentity(dir);
      const b = await loadOrCreateIdentity(dir);
      assert.equal(a.identifier, b.identifier);
      assert.deepEqual(a.publicKey, b.publicKey);
      const names = (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name);
      assert.deepEqual(names, [IDENTITY_FILE_NAME]);
    });

    await t.step({
      name: "a 0644 key file is refused with the chmod hint",
      ignore: !IS_POSIX,
      fn: async () => {
        await Deno.chmod(path, 0o644);
        await assert.rejects(
          loadOrCreateIdentity(dir),
          (error: unknown) =>
            error instanceof StateFileError && error.message.endsWith(`chmod 600 ${path}`),
        );
        await Deno.chmod(path, 0o600);
      },
    });

    const text = (s: string) => new TextEncoder().encode(s);
    const malformed: readonly [string, Uint8Array][] = [
      ["empty", text("")],
      [
        "another header",
        text("stratos-identity-v2 AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"),
      ],
      ["a short key", text("stratos-identity-v1 AAAA\n")],
      [
        "non-zero padding bits",
        text("stratos-identity-v1 AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB=\n"),
      ],
      [
        "two lines",
        text("stratos-identity-v1 AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\nmore\n"),
      ],
      ["not UTF-8", new Uint8Array([0xff, 0xfe])],
    ];
    for (const [label, bytes] of malformed) {
      await t.step(`a malformed key file (${label}) is refused, naming the path`, async () => {
        await writeSecretFile(path, bytes);
        await assert.rejects(loadOrCreateIdentity(dir), (error: unknown) => {
          assert.ok(error instanceof StateFileError);
          assert.equal(error.path, path);
          assert.ok(error.message.startsWith(`${path}: not a Stratos identity key file`));
          assert.ok(!error.message.includes("AAAAAAAAAAAA"), "must not quote the key");
          return true;
        });
      });
    }

    await t.step("two concurrent first loads agree on one identity", async () => {
      const fresh = join(root, "concurrent");
      const [a, b] = await Promise.all([loadOrCreateIdentity(fresh), loadOrCreateIdentity(fresh)]);
      assert.equal(a.identifier, b.identifier);
      assert.equal((await loadOrCreateIdentity(fresh)).identifier, a.identifier);
    });
  });
});
