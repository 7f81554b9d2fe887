/**
 * The Directive fixtures under tests/directives/: every invalid one is refused with exactly the
 * problems in its `.expected` sidecar (one `FILE:LINE:COLUMN: path: message` line each, FILE
 * being the fixture's own name); every valid one parses into what its table row says; and
 * schema/directive.schema.json agrees with the parser on both sets and on every key.
 *
 * Fixtures are checked against {@link RUNNABLES}, except those with their own top-level
 * `runnables:` list (a Subo-bundled Directive), which are checked against that list.
 */

import assert from "node:assert/strict";
import { parse as parseYaml } from "yaml";
import {
  type Directive,
  DIRECTIVE_KEYS,
  DirectiveError,
  formatProblem,
  HTTP_METHODS,
  parseDirective,
  RESERVED_PATHS,
  RouteTable,
} from "../src/directive/mod.ts";
import { type JsonSchema, validateJsonSchema } from "./_json_schema.ts";

const RUNNABLES = [
  "hello-rs",
  "get-user",
  "get-repos",
  "cache-get",
  "render",
  "db::get-user",
  "db-exec",
];
const FIXTURES = new URL("./directives/", import.meta.url);
const SCHEMA_URL = new URL("../schema/directive.schema.json", import.meta.url);

interface Fixture {
  /** File name, e.g. `empty_steps.yaml`; also the FILE of its problems. */
  readonly name: string;
  readonly text: string;
}

async function fixtures(kind: "valid" | "invalid"): Promise<Fixture[]> {
  const dir = new URL(`${kind}/`, FIXTURES);
  const out: Fixture[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (!entry.isFile || !entry.name.endsWith(".yaml")) continue;
    out.push({ name: entry.name, text: await Deno.readTextFile(new URL(entry.name, dir)) });
  }
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

function parseFixture(f: Fixture): Directive {
  const bundled = /^runnables:/m.test(f.text);
  return parseDirective(f.text, { file: f.name, ...(bundled ? {} : { runnables: RUNNABLES }) });
}

async function expectedProblems(name: string): Promise<string[]> {
  const url = new URL(`invalid/${name.replace(/\.yaml$/, ".expected")}`, FIXTURES);
  return (await Deno.readTextFile(url)).split("\n").filter((line) => line !== "");
}

async function loadSchema(): Promise<Record<string, unknown>> {
  return JSON.parse(await Deno.readTextFile(SCHEMA_URL));
}

Deno.test("every invalid Directive fixture is refused with exactly its expected problems", async (t) => {
  const invalid = await fixtures("invalid");
  assert.ok(invalid.length >= 30, `only ${invalid.length} invalid fixtures`);
  const sidecars = new Set<string>();
  for await (const entry of Deno.readDir(new URL("invalid/", FIXTURES))) {
    if (entry.name.endsWith(".expected")) sidecars.add(entry.name.replace(/\.expected$/, ".yaml"));
  }
  assert.deepEqual(
    [...sidecars].sort(),
    invalid.map((f) => f.name),
    "each invalid fixture has one .expected sidecar, and each sidecar a fixture",
  );
  for (const fixture of invalid) {
    await t.step(fixture.name, async () => {
      const expected = await expectedProblems(fixture.name);
      let error: unknown;
      try {
        parseFixture(fixture);
      } catch (err) {
        error = err;
      }
      assert.ok(error instanceof DirectiveError, `expected a DirectiveError, got ${error}`);
      assert.deepEqual(error.problems.map(formatProblem), expected);
      assert.equal(error.message, expected.join("\n"));
      // Every position points into the file: a real line, at most one past its end.
      const lines = fixture.text.split("\n");
      for (const p of error.problems) {
        assert.equal(p.file, fixture.name);
        assert.ok(p.line >= 1 && p.line <= lines.length, `${formatProblem(p)}: line out of file`);
        assert.ok(
          p.column >= 1 && p.column <= lines[p.line - 1]!.length + 1,
          `${formatProblem(p)}: column out of line`,
        );
      }
    });
  }
});

/** What each valid fixture must resolve to, beyond being accepted. */
const VALID: Readonly<Record<string, (d: Directive) => void>> = {
  "minimal.yaml": (d) => {
    assert.deepEqual([d.identifier, d.appVersion, d.headless], [
      "com.example.minimal",
      "v1",
      false,
    ]);
    assert.deepEqual([d.handlers, d.schedules, d.queries, d.runnables], [[], [], [], []]);
    assert.deepEqual([d.connections, d.authentication], [{}, { domains: {} }]);
    assert.equal(d.capabilities, undefined);
  },
  "hello.yaml": (d) => {
    const m = new RouteTable(d).match("POST", "/hello");
    assert.equal(m.kind === "found" && m.handler.response, "hello-rs");
  },
  "routes.yaml": (d) => {
    const routes = new RouteTable(d);
    assert.equal(routes.size, 10);
    const found = (method: string, path: string): [string, Record<string, string>] => {
      const m = routes.match(method, path);
      assert.equal(m.kind, "found", `${method} ${path}`);
      return m.kind === "found" ? [m.handler.resource, { ...m.params }] : ["", {}];
    };
    assert.deepEqual(found("GET", "/users/new"), ["/users/new", {}]);
    assert.deepEqual(found("GET", "/users/7"), ["/users/:id", { id: "7" }]);
    assert.deepEqual(found("GET", "/users/7/repos/atmo"), ["/users/:id/repos/:repo", {
      id: "7",
      repo: "atmo",
    }]);
    assert.deepEqual(found("POST", "/users/7/repos"), ["/users/:user/repos", { user: "7" }]);
    assert.deepEqual(found("PUT", "/files/a/b"), ["/files/*path", { path: "/a/b" }]);
    assert.deepEqual(found("GET", "/app/metrics"), ["/app/metrics", {}]);
    assert.deepEqual(found("GET", "/about"), ["/:page", { page: "about" }]);
    assert.deepEqual(found("HEAD", "/"), ["/", {}]);
  },
  "steps.yaml": (d) => {
    const [profile, cached] = d.handlers;
    const [group, repos, render] = profile?.steps ?? [];
    assert.equal(group?.kind, "group");
    assert.deepEqual(
      group?.kind === "group" && group.group.map((f) => [f.namespace, f.name, f.as, f.onErr]),
      [
        ["default", "get-user", "get-user", { codes: { 404: "continue" }, other: "return" }],
        ["db", "get-user", "record", { codes: {}, other: "return" }],
      ],
    );
    assert.deepEqual(repos?.kind === "fn" && [repos.as, repos.with, repos.onErr], [
      "repos",
      { user: "get-user", row: "record" },
      { codes: {}, other: "continue" },
    ]);
    assert.deepEqual(render?.kind === "fn" && render.with, { repos: "repos" });
    assert.equal(profile?.response, "repos");
    assert.equal(cached?.response, "render");
    const [cache, pair] = cached?.steps ?? [];
    assert.deepEqual(cache?.kind === "fn" && cache.onErr, { codes: {}, other: "return" });
    assert.deepEqual(pair?.kind === "group" && pair.group[1]?.onErr, {
      codes: { 500: "return", 503: "continue" },
      other: "continue",
    });
  },
  "schedules.yaml": (d) => {
    const [refresh, nightly] = d.schedules;
    assert.equal(refresh?.everySeconds, 5 * 60 + 30);
    assert.deepEqual(refresh?.state, { org: "suborbital", limit: "10" });
    assert.deepEqual(refresh?.steps[0]?.kind === "fn" && refresh.steps[0].with, {
      organisation: "org",
    });
    assert.equal(nightly?.everySeconds, 26 * 3600);
    assert.equal(nightly?.steps[0]?.kind, "group");
  },
  "stream.yaml": (d) => {
    assert.deepEqual(
      d.handlers.map((h) => [h.type, h.type === "stream" ? h.source : h.method, h.resource]),
      [["stream", "server", "/ws"], ["stream", "nats", "user-events"], ["request", "POST", "/ws"]],
    );
    assert.equal(new RouteTable(d).size, 1, "streams are not HTTP routes");
  },
  "connections.yaml": (d) => {
    assert.deepEqual(d.connections, {
      redis: {
        serverAddress: "localhost:6379",
        username: "env(REDIS_USER)",
        password: "env(REDIS_PASSWORD)",
      },
      database: { type: "postgresql", connectionString: "env(DATABASE_URL)" },
      kafka: { brokerAddress: "localhost:9092" },
    });
    assert.deepEqual(d.authentication.domains, {
      "api.github.com": { headerType: "bearer", value: "env(GITHUB_TOKEN)" },
      "api.example.com": { headerType: "bearer", value: "env(EXAMPLE_TOKEN)" },
    });
    assert.deepEqual(Object.keys(d.capabilities ?? {}), ["logger", "http", "cache"]);
    assert.deepEqual(d.queries.map((q) => [q.name, q.type, q.varCount]), [
      ["SelectUser", "select", 1],
      ["InsertUser", undefined, undefined],
    ]);
  },
  "bundled.yaml": (d) => {
    assert.equal(d.headless, true);
    assert.deepEqual(d.runnables.map((r) => [r.namespace, r.name, r.apiVersion]), [
      ["default", "hello-rs", "0.14.0"],
      ["db", "lookup", undefined],
    ]);
    const lookup = d.handlers[0]?.steps[1];
    assert.deepEqual(lookup?.kind === "fn" && [lookup.namespace, lookup.name, lookup.as], [
      "db",
      "lookup",
      "lookup",
    ]);
  },
};

Deno.test("every valid Directive fixture parses into what its table row says", async (t) => {
  const valid = await fixtures("valid");
  assert.deepEqual(valid.map((f) => f.name), Object.keys(VALID).sort(), "one row per fixture");
  for (const fixture of valid) {
    await t.step(fixture.name, () => VALID[fixture.name]!(parseFixture(fixture)));
  }
});

// ------------------------------------------------------------------ the JSON Schema

/**
 * Invalid fixtures the schema cannot refuse: what they get wrong needs more than one value at a
 * time (routes against routes, state keys against earlier steps, fn names against runnables).
 */
const BEYOND_SCHEMA = new Set([
  "bundled_unknown_runnable.yaml",
  "conflicting_param_names.yaml",
  "duplicate_route.yaml",
  "fqfn_other_application.yaml",
  "nats_stream_without_connection.yaml",
  "response_not_produced.yaml",
  "same_paths_route.yaml",
  "trailing_group_without_response.yaml",
  "unknown_namespaced_runnable.yaml",
  "unknown_runnable.yaml",
  "unknown_runnable_no_close_name.yaml",
  "with_group_sibling.yaml",
  "with_not_produced.yaml",
]);
/** Invalid fixtures that are not YAML documents at all, so no schema applies. */
const NOT_YAML = new Set(["duplicate_yaml_keys.yaml", "yaml_syntax_error.yaml"]);

function yamlData(f: Fixture): unknown {
  return parseYaml(f.text, { uniqueKeys: true, prettyErrors: false });
}

Deno.test("the JSON Schema accepts every valid Directive fixture", async (t) => {
  const schema = await loadSchema();
  for (const fixture of await fixtures("valid")) {
    await t.step(fixture.name, () => {
      assert.deepEqual(validateJsonSchema(schema, yamlData(fixture)), []);
    });
  }
});

Deno.test("the JSON Schema refuses every invalid fixture whose mistake one value shows", async (t) => {
  const schema = await loadSchema();
  for (const fixture of await fixtures("invalid")) {
    await t.step(fixture.name, () => {
      if (NOT_YAML.has(fixture.name)) {
        assert.throws(() => yamlData(fixture));
        return;
      }
      const problems = validateJsonSchema(schema, yamlData(fixture));
      if (BEYOND_SCHEMA.has(fixture.name)) assert.deepEqual(problems, [], "listed as beyond");
      else assert.notDeepEqual(problems, [], "the schema accepted it");
    });
  }
});

Deno.test("the JSON Schema names exactly the keys the parser accepts, section by section", async () => {
  const schema = await loadSchema();
  const defs = schema.$defs as Record<string, { properties?: object; oneOf?: unknown[] }>;
  const keysOf = (...nodes: ({ properties?: object } | undefined)[]): string[] =>
    [...new Set(nodes.flatMap((n) => Object.keys(n?.properties ?? {})))].sort();
  const connections = (defs.connections?.properties ?? {}) as Record<string, object>;
  const onErr = (defs.onErr?.oneOf ?? []) as { properties?: object }[];
  const schemaKeys: Record<keyof typeof DIRECTIVE_KEYS, string[]> = {
    directive: keysOf(schema),
    handler: keysOf(defs.requestHandler, defs.streamHandler),
    fn: keysOf(defs.groupFn),
    step: keysOf(defs.fnStep, defs.groupStep),
    onErr: keysOf(...onErr),
    schedule: keysOf(defs.schedule),
    every: keysOf((defs.schedule?.properties as Record<string, object>).every),
    connections: keysOf(defs.connections),
    nats: keysOf(connections.nats),
    kafka: keysOf(connections.kafka),
    database: keysOf(connections.database),
    redis: keysOf(connections.redis),
    authentication: keysOf(defs.authentication),
    domainAuth: keysOf(defs.domainAuth),
    query: keysOf(defs.query),
    runnable: keysOf(defs.runnable),
  };
  assert.deepEqual(Object.keys(schemaKeys).sort(), Object.keys(DIRECTIVE_KEYS).sort());
  for (const [section, keys] of Object.entries(DIRECTIVE_KEYS)) {
    assert.deepEqual(schemaKeys[section as keyof typeof DIRECTIVE_KEYS], [...keys].sort(), section);
  }
  assert.deepEqual((defs.method as { enum?: string[] }).enum, [...HTTP_METHODS]);
  const path = defs.path as { not?: { enum?: string[] } };
  assert.deepEqual(path.not?.enum, [...RESERVED_PATHS]);
});

Deno.test("the project's Directive.yaml points editors at the schema and satisfies it", async () => {
  const text = await Deno.readTextFile(new URL("../Directive.yaml", import.meta.url));
  const modeline = "# yaml-language-server: $schema=schema/directive.schema.json";
  assert.equal(text.split("\n")[0], modeline);
  assert.deepEqual(validateJsonSchema(await loadSchema(), parseYaml(text)), []);
});

Deno.test("the test JSON Schema validator applies each keyword it claims", () => {
  const schema: JsonSchema = {
    $defs: { small: { type: "integer", minimum: 1, maximum: 3 } },
    type: "object",
    required: ["n"],
    additionalProperties: false,
    properties: {
      n: { $ref: "#/$defs/small" },
      tags: { type: "array", minItems: 1, items: { enum: ["a", "b"] } },
      name: { type: "string", pattern: "^x", minLength: 2 },
      pick: { oneOf: [{ type: "string" }, { type: "number" }] },
      any: { anyOf: [{ type: "boolean" }, { type: "null" }] },
      map: { type: "object", propertyNames: { pattern: "^\\d+$" } },
      never: { not: {} },
    },
  };
  assert.deepEqual(validateJsonSchema(schema, { n: 2, tags: ["a"], name: "xy", pick: 1 }), []);
  assert.deepEqual(
    validateJsonSchema(schema, {
      n: 4,
      tags: [],
      name: "y",
      pick: true,
      any: 0,
      map: { a: 1 },
      never: 1,
      extra: 0,
    }),
    [
      "/n: must be at most 3, got 4",
      "/tags: must have at least 1 items, got 0",
      '/name: "y" does not match ^x',
      "/name: must have at least 2 characters",
      "/pick: matches none of oneOf's schemas; nearest: /pick: must be of type string, got boolean",
      "/any: matches none of anyOf's schemas; nearest: /any: must be of type boolean, got integer",
      '/map/a: "a" does not match ^\\d+$',
      '/never: must not match the schema under "not"',
      '/: has unknown property "extra"',
    ],
  );
  assert.deepEqual(validateJsonSchema(schema, { tags: ["c"] }), [
    '/: is missing "n"',
    '/tags/0: must be one of ["a","b"], got "c"',
  ]);
  assert.throws(() => validateJsonSchema({ const: 1 }, 1), /unsupported keyword "const"/);
  assert.throws(() => validateJsonSchema({ $ref: "#/$defs/none" }, 1), /does not resolve/);
});
