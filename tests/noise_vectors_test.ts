import assert from "node:assert/strict";
import { BACKENDS } from "../src/channel/backends.ts";
import { parseVectorFile, runVector, runVectors } from "../src/channel/noise_vectors.ts";

const VECTORS = parseVectorFile(
  await Deno.readTextFile(new URL("./vectors/cacophony.json", import.meta.url)),
);

Deno.test("the shared cacophony file holds 32 vectors", () => {
  assert.equal(VECTORS.length, 32);
});

for (const backend of BACKENDS) {
  for (const vector of VECTORS) {
    Deno.test(`vector ${vector.protocol_name} passes on the ${backend.name} backend`, () => {
      assert.deepEqual(runVector(vector, backend), { status: "passed" });
    });
  }
}

Deno.test("a vector with one wrong ciphertext byte fails on every backend", () => {
  const vector = VECTORS.find((v) => v.protocol_name === "Noise_XX_25519_ChaChaPoly_SHA256")!;
  for (const index of [0, 2, 4]) {
    const messages = vector.messages.map((m, i) => {
      if (i !== index) return m;
      const last = m.ciphertext.at(-1) === "0" ? "1" : "0";
      return { ...m, ciphertext: m.ciphertext.slice(0, -1) + last };
    });
    for (const backend of BACKENDS) {
      const outcome = runVector({ ...vector, messages }, backend);
      assert.equal(outcome.status, "failed", `message ${index} on ${backend.name}`);
    }
  }
});

Deno.test("a wrong handshake hash fails the vector", () => {
  const vector = VECTORS[0]!;
  const outcome = runVector({ ...vector, handshake_hash: "00".repeat(32) }, BACKENDS[0]!);
  assert.equal(outcome.status, "failed");
});

Deno.test("vectors of unimplemented protocols are skipped, never failed", () => {
  const base = VECTORS[0]!;
  const vectors = [
    { ...base, protocol_name: "Noise_XX_448_ChaChaPoly_SHA256" },
    { ...base, protocol_name: "Noise_XXfallback_25519_AESGCM_SHA256" },
    { ...base, protocol_name: "NoisePSK_XX_25519_AESGCM_SHA256" },
  ];
  const { overall, perBackend } = runVectors(vectors, BACKENDS);
  assert.deepEqual(overall, { passed: 0, failed: 0, skipped: 3 });
  for (const tally of perBackend.values()) assert.equal(tally.skipped, 3);
});

Deno.test("the vector file may be an array or an object with a vectors key", () => {
  const text = JSON.stringify(VECTORS.slice(0, 2));
  assert.equal(parseVectorFile(text).length, 2);
  assert.equal(parseVectorFile(`{"vectors": ${text}}`).length, 2);
  assert.throws(() => parseVectorFile(`{"other": []}`), SyntaxError);
});

Deno.test("deno task vectors prints per-backend lines and the per-vector total", async () => {
  const output = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-read",
      "--allow-env=INIT_CWD",
      "src/vectors.ts",
      "tests/vectors/cacophony.json",
    ],
    cwd: new URL("..", import.meta.url),
    env: { INIT_CWD: new URL("..", import.meta.url).pathname },
  }).output();
  const lines = new TextDecoder().decode(output.stdout).trim().split("\n");
  assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
  assert.deepEqual(lines, [
    "native: 32 passed, 0 failed, 0 skipped",
    "portable: 32 passed, 0 failed, 0 skipped",
    "32 passed, 0 failed, 0 skipped",
  ]);
});

Deno.test("deno task vectors exits 1 when a vector fails and 2 on a missing file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const broken = VECTORS.slice(0, 1).map((v) => ({ ...v, handshake_hash: "00".repeat(32) }));
    await Deno.writeTextFile(`${dir}/broken.json`, JSON.stringify(broken));
    const run = (file: string) =>
      new Deno.Command(Deno.execPath(), {
        args: ["run", "--allow-read", "--allow-env=INIT_CWD", "src/vectors.ts", file],
        cwd: new URL("..", import.meta.url),
        env: { INIT_CWD: dir },
      }).output();
    const failed = await run("broken.json");
    assert.equal(failed.code, 1);
    assert.match(new TextDecoder().decode(failed.stdout), /^0 passed, 1 failed, 0 skipped$/m);
    assert.equal((await run("missing.json")).code, 2);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
