import assert from "node:assert/strict";
import {
  type Directive,
  DirectiveError,
  type Handler,
  loadDirectiveFile,
  parseDirective,
  type RequestHandler,
  RouteTable,
} from "../src/directive/mod.ts";

const FILE = "Directive.yaml";
const RUNNABLES = ["hello-rs", "get-user", "get-repos", "cache-get", "render", "db::get-user"];

/** A valid head of a Directive; test cases append handlers etc. */
const HEAD = `identifier: com.example.app
appVersion: v0.1.0
atmoVersion: v0.4.0
`;

/** The problem lines of a Directive that must be refused. */
function problems(text: string, runnables: readonly string[] | null = RUNNABLES): string[] {
  try {
    parseDirective(text, { file: FILE, ...(runnables ? { runnables } : {}) });
  } catch (err) {
    assert.ok(err instanceof DirectiveError, `expected a DirectiveError, got ${err}`);
    return err.message.split("\n");
  }
  assert.fail("the Directive was accepted");
}

function requestHandlers(directive: Directive): RequestHandler[] {
  return directive.handlers.filter((h): h is RequestHandler => h.type === "request");
}

Deno.test("the project's Directive.yaml parses into the reference design's one route", async () => {
  const path = new URL("../Directive.yaml", import.meta.url).pathname;
  const directive = await loadDirectiveFile(path, { runnables: ["helloworld-rs"] });
  assert.equal(directive.identifier, "com.suborbital.stratos-demo");
  assert.equal(directive.appVersion, "v0.1.0");
  assert.equal(directive.atmoVersion, "v0.4.0");
  assert.equal(directive.headless, false);
  assert.equal(directive.handlers.length, 1);
  const [hello] = requestHandlers(directive);
  assert.equal(hello?.method, "POST");
  assert.equal(hello?.resource, "/hello");
  assert.equal(hello?.response, "helloworld-rs");
  assert.deepEqual(hello?.steps, [{
    kind: "fn",
    fn: "helloworld-rs",
    name: "helloworld-rs",
    namespace: "default",
    as: "helloworld-rs",
    with: {},
    onErr: { codes: {}, other: "return" },
  }]);
  assert.ok(Object.isFrozen(directive) && Object.isFrozen(hello?.steps[0]));
  const m = new RouteTable(directive).match("POST", "/hello");
  assert.equal(m.kind, "found");
});

const REALISTIC =
  `# An Atmo v0.4 application: routes with params, a catch-all, groups, onErr, schedules.
identifier: com.suborbital.important-api
appVersion: v1.2.0
atmoVersion: v0.4.0
headless: false

connections:
  nats:
    serverAddress: nats://localhost:4222
  redis:
    serverAddress: localhost:6379

authentication:
  domains:
    api.github.com:
      headerType: bearer
      value: env(GITHUB_TOKEN)

capabilities:
  logger:
    enabled: true
  http:
    enabled: true
    rules:
      allowedDomains: [api.github.com]

queries:
  - name: PGSelectUserWithUUID
    query: SELECT * FROM users WHERE uuid = $1
    varCount: 1

handlers:
  - type: request
    resource: /hello
    method: POST
    steps:
      - fn: hello-rs

  - type: request
    resource: /users/:id
    method: GET
    steps:
      - group:
          - fn: get-user
          - fn: db::get-user
            as: db-user
      - fn: render
        with:
          user: get-user
          record: db-user
        onErr:
          code:
            404: continue
          other: return
    response: render

  - resource: /repo/report/*repo
    method: GET
    steps:
      - fn: cache-get
        onErr:
          any: continue
      - fn: get-repos
        as: repos
    response: repos

  - type: stream
    source: nats
    resource: user-events
    respondTo: user-events-done
    steps:
      - fn: hello-rs

schedules:
  - name: refresh-cache
    every:
      minutes: 5
      seconds: 30
    state:
      org: suborbital
    steps:
      - fn: get-repos
        with:
          org: org
`;

Deno.test("a realistic Atmo Directive with params, catch-all, groups, onErr and schedules parses", () => {
  const d = parseDirective(REALISTIC, { file: FILE, runnables: RUNNABLES });
  assert.equal(d.identifier, "com.suborbital.important-api");
  assert.deepEqual(d.connections, {
    nats: { serverAddress: "nats://localhost:4222" },
    redis: { serverAddress: "localhost:6379" },
  });
  assert.deepEqual(d.authentication.domains["api.github.com"], {
    headerType: "bearer",
    value: "env(GITHUB_TOKEN)",
  });
  assert.deepEqual(d.capabilities, {
    logger: { enabled: true },
    http: { enabled: true, rules: { allowedDomains: ["api.github.com"] } },
  });
  assert.deepEqual(d.queries, [{
    name: "PGSelectUserWithUUID",
    query: "SELECT * FROM users WHERE uuid = $1",
    varCount: 1,
  }]);

  const [hello, user, report, stream] = d.handlers as readonly Handler[];
  assert.equal(hello?.type, "request");
  assert.equal(user?.type === "request" && user.resource, "/users/:id");
  assert.equal(user?.response, "render");
  const group = user?.steps[0];
  assert.equal(group?.kind, "group");
  assert.deepEqual(
    group?.kind === "group" && group.group.map((f) => [f.fn, f.namespace, f.name, f.as]),
    [["get-user", "default", "get-user", "get-user"], [
      "db::get-user",
      "db",
      "get-user",
      "db-user",
    ]],
  );
  const render = user?.steps[1];
  assert.deepEqual(render?.kind === "fn" && render.with, { user: "get-user", record: "db-user" });
  assert.deepEqual(render?.kind === "fn" && render.onErr, {
    codes: { 404: "continue" },
    other: "return",
  });
  assert.equal(report?.type, "request", "type defaults to request");
  const cache = report?.steps[0];
  assert.deepEqual(cache?.kind === "fn" && cache.onErr, { codes: {}, other: "continue" });
  assert.equal(report?.response, "repos");
  assert.deepEqual(stream?.type === "stream" && [stream.source, stream.respondTo], [
    "nats",
    "user-events-done",
  ]);
  assert.deepEqual(stream?.location, { file: FILE, line: 67, column: 5, path: "handlers[3]" });

  const [schedule] = d.schedules;
  assert.equal(schedule?.name, "refresh-cache");
  assert.deepEqual(schedule?.every, { seconds: 30, minutes: 5, hours: 0, days: 0 });
  assert.equal(schedule?.everySeconds, 330);
  assert.deepEqual(schedule?.state, { org: "suborbital" });

  const routes = new RouteTable(d);
  assert.equal(routes.size, 3, "the stream handler is not an HTTP route");
  const m = routes.match("GET", "/repo/report/suborbital/atmo");
  assert.equal(m.kind === "found" && m.handler, report);
  assert.deepEqual(m.kind === "found" && { ...m.params }, { repo: "/suborbital/atmo" });
});

Deno.test("fn names are only checked for shape without a runnable list", () => {
  const text = HEAD + `handlers:
  - resource: /a
    method: GET
    steps:
      - fn: anything-goes
      - fn: "not a name"
`;
  assert.deepEqual(problems(text, null), [
    'Directive.yaml:9:9: handlers[0].steps[1].fn: "not a name" is not a runnable reference (a name like "hello-rs", optionally "namespace::name")',
  ]);
  const ok = HEAD + "handlers:\n  - {resource: /a, method: GET, steps: [fn: anything-goes]}\n";
  assert.equal(parseDirective(ok, { file: FILE }).handlers.length, 1);
});

Deno.test("a bundled Directive's own runnables list is what fn names are checked against", () => {
  const text = HEAD + `handlers:
  - {resource: /a, method: GET, steps: [fn: hello-rs, fn: godbye-rs]}
runnables:
  - name: hello-rs
    namespace: default
    lang: rust
    version: v0.1.0
    apiVersion: 0.14.0
    fqfn: com.example.app#default::hello-rs@v0.1.0
  - name: goodbye-rs
`;
  assert.deepEqual(problems(text, null), [
    'Directive.yaml:5:55: handlers[0].steps[1].fn: no runnable named "godbye-rs" (did you mean "goodbye-rs"?)',
  ]);
});

/** Broken Directives, each with every problem line it must produce. */
const BROKEN: readonly { name: string; text: string; expected: string[] }[] = [
  {
    name: "an unknown top-level key",
    text: HEAD + "handler:\n  - {resource: /a, method: GET, steps: [fn: hello-rs]}\n",
    expected: ['Directive.yaml:4:1: handler: unknown key "handler" (did you mean "handlers"?)'],
  },
  {
    name: "an unknown key with nothing close",
    text: HEAD + "routes: []\n",
    expected: [
      'Directive.yaml:4:1: routes: unknown key "routes"; expected one of: identifier, appVersion, atmoVersion, headless, handlers, schedules, authentication, connections, capabilities, queries, runnables',
    ],
  },
  {
    name: "an unknown handler key and step key",
    text: HEAD + `handlers:
  - resource: /a
    method: GET
    steps:
      - fn: hello-rs
        wiht: {}
    respons: hello-rs
`,
    expected: [
      'Directive.yaml:9:9: handlers[0].steps[0].wiht: unknown key "wiht" (did you mean "with"?)',
      'Directive.yaml:10:5: handlers[0].respons: unknown key "respons" (did you mean "response"?)',
    ],
  },
  {
    name: "a missing identifier",
    text: "appVersion: v0.1.0\natmoVersion: v0.4.0\n",
    expected: [
      'Directive.yaml:1:1: identifier: is missing; add a reverse-DNS name like "com.example.app"',
    ],
  },
  {
    name: "an identifier that is not reverse-DNS",
    text: HEAD.replace("com.example.app", "My App"),
    expected: [
      'Directive.yaml:1:1: identifier: "My App" is not a reverse-DNS identifier (like "com.example.My-App")',
    ],
  },
  {
    name: "bad semantic versions",
    text: 'identifier: com.example.app\nappVersion: "0.1.0"\natmoVersion: latest\n',
    expected: [
      'Directive.yaml:2:1: appVersion: "0.1.0" is not a semantic version with a leading "v" (did you mean "v0.1.0"?)',
      'Directive.yaml:3:1: atmoVersion: "latest" is not a semantic version with a leading "v", like "v0.4.0"',
    ],
  },
  {
    name: "a version written as a number",
    text: "identifier: com.example.app\nappVersion: v0.1.0\natmoVersion: 0.4\n",
    expected: [
      'Directive.yaml:3:1: atmoVersion: must be a version string, got 0.4 (did you mean "v0.4.0"?)',
    ],
  },
  {
    name: "bad resources",
    text: HEAD + `handlers:
  - {resource: hello, method: GET, steps: [fn: hello-rs]}
  - {resource: /a//b, method: GET, steps: [fn: hello-rs]}
  - {resource: /files/*path/x, method: GET, steps: [fn: hello-rs]}
  - {resource: /user_:name, method: GET, steps: [fn: hello-rs]}
  - {resource: /users/:id/:id, method: GET, steps: [fn: hello-rs]}
  - {resource: "/users/:", method: GET, steps: [fn: hello-rs]}
  - {resource: /search?q=1, method: GET, steps: [fn: hello-rs]}
`,
    expected: [
      'Directive.yaml:5:6: handlers[0].resource: "hello" must start with "/" (did you mean "/hello"?)',
      'Directive.yaml:6:6: handlers[1].resource: "/a//b" has an empty segment ("//"); remove the extra "/"',
      'Directive.yaml:7:6: handlers[2].resource: "/files/*path/x": the catch-all "*path" must be the last segment',
      'Directive.yaml:8:6: handlers[3].resource: "/user_:name": a parameter must be a whole segment (write ":name" as a segment of its own)',
      'Directive.yaml:9:6: handlers[4].resource: "/users/:id/:id" uses the name "id" twice; give each parameter its own name',
      'Directive.yaml:10:6: handlers[5].resource: "/users/:" has a parameter without a name (like ":name")',
      'Directive.yaml:11:6: handlers[6].resource: "/search?q=1" must be a path only, without "?" or "#"',
    ],
  },
  {
    name: "a step with both fn and group, and one with neither",
    text: HEAD + `handlers:
  - resource: /a
    method: GET
    steps:
      - fn: hello-rs
        group:
          - fn: render
      - as: nothing
`,
    expected: [
      'Directive.yaml:8:9: handlers[0].steps[0]: has both "fn" and "group"; a step is exactly one of them, so split it in two',
      'Directive.yaml:11:9: handlers[0].steps[1]: needs "fn" (one runnable) or "group" (runnables run together)',
    ],
  },
  {
    name: "forEach",
    text: HEAD + `handlers:
  - resource: /a
    method: GET
    steps:
      - forEach:
          in: items
          fn: hello-rs
          as: results
`,
    expected: [
      "Directive.yaml:8:9: handlers[0].steps[0].forEach: forEach was removed in Atmo v0.4; loop inside a runnable, or list the calls as steps",
    ],
  },
  {
    name: "duplicate keys",
    text: HEAD + `handlers:
  - resource: /a
    method: GET
    method: POST
    steps:
      - fn: hello-rs
appVersion: v0.2.0
`,
    expected: [
      'Directive.yaml:7:5: handlers[0].method: duplicate key "method" (first at line 6); keep one of them',
      'Directive.yaml:10:1: appVersion: duplicate key "appVersion" (first at line 2); keep one of them',
    ],
  },
  {
    name: "wrong types",
    text: `identifier: com.example.app
appVersion: v0.1.0
atmoVersion: v0.4.0
headless: "yes"
handlers:
  - resource: /a
    method: 42
    steps: hello-rs
  - resource: [/b]
    method: GET
    steps:
      - fn: {name: hello-rs}
        as: 7
        with: [a, b]
schedules: {name: x}
`,
    expected: [
      'Directive.yaml:4:1: headless: must be true or false, got "yes"',
      "Directive.yaml:7:5: handlers[0].method: must be an HTTP method (GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS), got 42",
      'Directive.yaml:8:5: handlers[0].steps: must be a list of steps, got "hello-rs"',
      'Directive.yaml:9:5: handlers[1].resource: must be a route like "/hello", got a list',
      'Directive.yaml:12:9: handlers[1].steps[0].fn: must be a runnable name like "hello-rs", got a map',
      "Directive.yaml:13:9: handlers[1].steps[0].as: must be a state key (a non-empty string), got 7",
      "Directive.yaml:14:9: handlers[1].steps[0].with: must be a map of alias: state key, got a list",
      "Directive.yaml:15:1: schedules: must be a list of schedules, got a map",
    ],
  },
  {
    name: "a Directive that is not a map",
    text: "- identifier: com.example.app\n",
    expected: [
      "Directive.yaml:1:1: the Directive must be a map of identifier, appVersion, atmoVersion, handlers, ..., got a list",
    ],
  },
  {
    name: "an empty file",
    text: "# nothing here\n",
    expected: [
      "Directive.yaml:1:1: the Directive is empty; it needs identifier, appVersion and atmoVersion",
    ],
  },
  {
    name: "YAML that does not parse",
    text: HEAD + "handlers:\n  - resource: [/a\n    method: GET\n",
    expected: [
      "Directive.yaml:6:5: Flow sequence in block collection must be sufficiently indented and end with a ]",
    ],
  },
  {
    name: "duplicate routes",
    text: HEAD + `handlers:
  - {resource: /hello, method: POST, steps: [fn: hello-rs]}
  - {resource: /users/:id, method: GET, steps: [fn: get-user]}
  - {resource: /hello, method: GET, steps: [fn: hello-rs]}
  - {resource: /hello, method: POST, steps: [fn: render]}
  - {resource: /users/:name, method: GET, steps: [fn: get-user]}
`,
    expected: [
      "Directive.yaml:8:6: handlers[3].resource: POST /hello is already handled by handlers[0] (line 5); change the method or the resource, or merge the two handlers",
      "Directive.yaml:9:6: handlers[4].resource: GET /users/:name matches the same paths as GET /users/:id in handlers[1] (line 6); change the method or the resource, or merge the two handlers",
    ],
  },
  {
    name: "bad methods",
    text: HEAD + `handlers:
  - {resource: /a, method: get, steps: [fn: hello-rs]}
  - {resource: /b, method: FETCH, steps: [fn: hello-rs]}
  - {resource: /c, method: PSOT, steps: [fn: hello-rs]}
  - {resource: /d, steps: [fn: hello-rs]}
`,
    expected: [
      'Directive.yaml:5:20: handlers[0].method: "get" is not an HTTP method (did you mean "GET"?)',
      'Directive.yaml:6:20: handlers[1].method: "FETCH" is not an HTTP method; use one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS',
      'Directive.yaml:7:20: handlers[2].method: "PSOT" is not an HTTP method (did you mean "POST"?)',
      "Directive.yaml:8:5: handlers[3].method: is missing; add one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS",
    ],
  },
  {
    name: "unknown runnables, with and without a close name",
    text: HEAD + `handlers:
  - resource: /a
    method: GET
    steps:
      - fn: helo-rs
      - group:
          - fn: db::get-usr
          - fn: quantum-teleport
`,
    expected: [
      'Directive.yaml:8:9: handlers[0].steps[0].fn: no runnable named "helo-rs" (did you mean "hello-rs"?)',
      'Directive.yaml:10:13: handlers[0].steps[1].group[0].fn: no runnable named "db::get-usr" (did you mean "db::get-user"?)',
      'Directive.yaml:11:13: handlers[0].steps[1].group[1].fn: no runnable named "quantum-teleport"; available: "hello-rs", "get-user", "get-repos", "cache-get", "render", "db::get-user"',
    ],
  },
  {
    name: "a fully qualified fn name for another application or version",
    text: HEAD + `handlers:
  - resource: /a
    method: GET
    steps:
      - fn: com.other.app#default::hello-rs@v0.1.0
      - fn: com.example.app#default::hello-rs@v9.0.0
`,
    expected: [
      'Directive.yaml:8:9: handlers[0].steps[0].fn: "com.other.app#default::hello-rs@v0.1.0" names application "com.other.app", but this Directive\'s identifier is "com.example.app"; leave "com.other.app#" out',
      'Directive.yaml:9:9: handlers[0].steps[1].fn: "com.example.app#default::hello-rs@v9.0.0" names version "v9.0.0", but this Directive\'s appVersion is "v0.1.0"; leave "@v9.0.0" out',
    ],
  },
  {
    name: "state keys used before any step provides them",
    text: HEAD + `handlers:
  - resource: /a
    method: GET
    steps:
      - group:
          - fn: get-user
          - fn: get-repos
            with: {user: get-user}
      - fn: render
        with: {repos: repos}
    response: result
  - resource: /b
    method: GET
    steps:
      - group:
          - fn: get-user
          - fn: get-repos
`,
    expected: [
      'Directive.yaml:11:20: handlers[0].steps[0].group[1].with.user: state key "get-user" comes from another fn of this group, and the fns of a group run together; move this fn to a step after the group',
      'Directive.yaml:13:16: handlers[0].steps[1].with.repos: no earlier step produces state key "repos"; name a key produced before this step (available: "get-user", "get-repos")',
      'Directive.yaml:14:5: handlers[0].response: no step produces state key "result"; name a key the steps produce (available: "get-user", "get-repos", "render")',
      'Directive.yaml:15:5: handlers[1].response: is missing; the last step is a group, so name the state key to answer with (available: "get-user", "get-repos")',
    ],
  },
  {
    name: "malformed onErr",
    text: HEAD + `handlers:
  - resource: /a
    method: GET
    steps:
      - fn: hello-rs
        onErr: {any: continue, code: {404: continue}}
      - fn: render
        onErr: {other: continue}
      - fn: get-user
        onErr: {code: {404: skip, 42: continue}, other: ignore}
      - fn: get-repos
        onErr: continue
`,
    expected: [
      'Directive.yaml:9:17: handlers[0].steps[0].onErr.any: cannot be used with "code"; use "other" instead',
      'Directive.yaml:11:17: handlers[0].steps[1].onErr.other: needs "code"; without codes use "any" instead',
      'Directive.yaml:13:24: handlers[0].steps[2].onErr.code[404]: "skip" is not an error action; use "continue" or "return"',
      'Directive.yaml:13:35: handlers[0].steps[2].onErr.code[42]: "42" is not an HTTP status code (100-599)',
      'Directive.yaml:13:50: handlers[0].steps[2].onErr.other: "ignore" is not an error action; use "continue" or "return"',
      'Directive.yaml:15:9: handlers[0].steps[3].onErr: must be a map like {any: continue} or {code: {404: continue}, other: return}, got "continue"',
    ],
  },
  {
    name: "group steps with misplaced and nested keys",
    text: HEAD + `handlers:
  - resource: /a
    method: GET
    steps:
      - group:
          - fn: get-user
          - group: [fn: render]
        as: both
    response: get-user
`,
    expected: [
      "Directive.yaml:10:13: handlers[0].steps[0].group[1].group: cannot be nested in a group; list fn steps only",
      "Directive.yaml:11:9: handlers[0].steps[0].as: belongs on each fn inside the group, not on the group; move it onto the fn",
    ],
  },
  {
    name: "stream-only fields on a request handler, and a nats stream without a connection",
    text: HEAD + `handlers:
  - resource: /a
    method: GET
    source: nats
    respondTo: done
    steps: [fn: hello-rs]
  - type: stream
    source: nats
    resource: events
    steps: [fn: hello-rs]
  - type: websocket
    resource: /ws
    steps: [fn: hello-rs]
`,
    expected: [
      'Directive.yaml:7:5: handlers[0].source: only applies to type "stream"; remove it, or set "type: stream"',
      'Directive.yaml:8:5: handlers[0].respondTo: only applies to type "stream"; remove it, or set "type: stream"',
      'Directive.yaml:11:5: handlers[1].source: "nats" needs a NATS connection; add connections.nats.serverAddress',
      'Directive.yaml:14:5: handlers[2].type: "websocket" is not a handler type; use "request" or "stream"',
    ],
  },
  {
    name: "malformed schedules",
    text: HEAD + `schedules:
  - name: tick
    every: {}
    steps: [fn: hello-rs]
  - every: {hours: -1, weeks: 1}
    steps: []
`,
    expected: [
      "Directive.yaml:6:5: schedules[0].every: needs at least one of seconds, minutes, hours, days above 0",
      "Directive.yaml:8:5: schedules[1].name: is missing; add a name for the schedule",
      "Directive.yaml:8:13: schedules[1].every.hours: must be a whole number, 0 or more, got -1",
      'Directive.yaml:8:24: schedules[1].every.weeks: unknown key "weeks"; expected one of: seconds, minutes, hours, days',
      'Directive.yaml:9:5: schedules[1].steps: must list at least one step, like "- fn: hello"',
    ],
  },
  {
    name: "malformed connections, authentication, queries and runnables",
    text: HEAD + `connections:
  nats: {server: nats://x}
  database: {type: sqlite, connectionString: "file:x"}
  mqtt: {}
authentication:
  domains:
    api.github.com: {headerType: bearer}
capabilities: [logger]
queries:
  - {name: q, query: SELECT 1, type: upsert}
runnables:
  - {namespace: default}
`,
    expected: [
      'Directive.yaml:5:9: connections.nats.serverAddress: is missing; add the server\'s address, like "nats://localhost:4222"',
      'Directive.yaml:5:10: connections.nats.server: unknown key "server"; expected one of: serverAddress',
      'Directive.yaml:6:14: connections.database.type: "sqlite" is not a database type; use "mysql" or "postgresql"',
      'Directive.yaml:7:3: connections.mqtt: unknown key "mqtt"; expected one of: nats, kafka, database, redis',
      'Directive.yaml:10:21: authentication.domains["api.github.com"].value: is missing; add the header value',
      "Directive.yaml:11:1: capabilities: must be a map of capabilities, got a list",
      'Directive.yaml:13:32: queries[0].type: "upsert" is not a query type (did you mean "insert"?)',
      "Directive.yaml:15:5: runnables[0].name: is missing; add the runnable's name",
    ],
  },
  {
    name: "YAML merge keys",
    text: HEAD + `handlers:
  - &base {resource: /a, method: GET, steps: [fn: hello-rs]}
  - <<: *base
    resource: /b
`,
    expected: [
      'Directive.yaml:6:5: handlers[1]["<<"]: YAML merge keys ("<<") are not supported; write the keys out',
      "Directive.yaml:6:5: handlers[1].method: is missing; add one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS",
      'Directive.yaml:6:5: handlers[1].steps: is missing; add at least one step, like "- fn: hello"',
    ],
  },
];

Deno.test("a table of broken Directives is refused with every problem at its position", async (t) => {
  for (const { name, text, expected } of BROKEN) {
    await t.step(name, () => assert.deepEqual(problems(text), expected));
  }
});

Deno.test("a problem reads file:line:column: path: message, pointing at the key", () => {
  const text = `# line 1
identifier: com.example.app
appVersion: v0.1.0
atmoVersion: v0.4.0

handlers:
  - type: request
    resource: /hello
    method: POST
    steps:
      - fn: hello-rs
      - fn: helo-rs
`;
  assert.deepEqual(problems(text), [
    'Directive.yaml:12:9: handlers[0].steps[1].fn: no runnable named "helo-rs" (did you mean "hello-rs"?)',
  ]);
});

Deno.test("every problem of a file is reported at once, whatever its section", () => {
  const text = `identifier: com.example.app
appVersion: v1.0
atmoVersion: 0.4.0
handlers:
  - resource: /users/:id
    method: GET
    steps:
      - fn: get-usr
  - resource: /users/:name
    method: GET
    steps:
      - forEach: {in: users, fn: get-user, as: user}
  - resource: /hello
    method: post
    steps: [fn: hello-rs]
    respnse: hello-rs
schedules:
  - name: nightly
    every: {days: 1}
    steps: [fn: hello-rs, group: [fn: render]]
`;
  assert.deepEqual(problems(text), [
    'Directive.yaml:3:1: atmoVersion: "0.4.0" is not a semantic version with a leading "v" (did you mean "v0.4.0"?)',
    'Directive.yaml:8:9: handlers[0].steps[0].fn: no runnable named "get-usr" (did you mean "get-user"?)',
    "Directive.yaml:9:5: handlers[1].resource: GET /users/:name matches the same paths as GET /users/:id in handlers[0] (line 5); change the method or the resource, or merge the two handlers",
    "Directive.yaml:12:9: handlers[1].steps[0].forEach: forEach was removed in Atmo v0.4; loop inside a runnable, or list the calls as steps",
    'Directive.yaml:14:5: handlers[2].method: "post" is not an HTTP method (did you mean "POST"?)',
    'Directive.yaml:16:5: handlers[2].respnse: unknown key "respnse" (did you mean "response"?)',
  ]);
});

Deno.test("DirectiveError carries structured problems, in file order", () => {
  const text = `identifier: x
appVersion: v1
atmoVersion: v0.4.0
handlers:
  - {resource: /a, method: GET, steps: [fn: helo-rs]}
`;
  let error: unknown;
  try {
    parseDirective(text, { file: "app/Directive.yaml", runnables: ["hello-rs"] });
  } catch (err) {
    error = err;
  }
  assert.ok(error instanceof DirectiveError);
  assert.ok(error instanceof SyntaxError);
  assert.equal(error.name, "DirectiveError");
  assert.equal(error.file, "app/Directive.yaml");
  assert.deepEqual(error.problems, [
    {
      file: "app/Directive.yaml",
      line: 1,
      column: 1,
      path: "identifier",
      message: '"x" is not a reverse-DNS identifier (like "com.example.x")',
    },
    {
      file: "app/Directive.yaml",
      line: 5,
      column: 41,
      path: "handlers[0].steps[0].fn",
      message: 'no runnable named "helo-rs" (did you mean "hello-rs"?)',
    },
  ]);
  assert.equal(error.line, 1);
  assert.equal(
    error.message,
    'app/Directive.yaml:1:1: identifier: "x" is not a reverse-DNS identifier (like "com.example.x")\n' +
      'app/Directive.yaml:5:41: handlers[0].steps[0].fn: no runnable named "helo-rs" (did you mean "hello-rs"?)',
  );
});

Deno.test("Go-style short versions (v1, v1.2) and pre-releases are accepted, as Atmo does", () => {
  for (const version of ["v1", "v1.2", "v1.2.3", "v1.2.3-rc.1", "v1.2.3+build.7", "v0.4.0-beta"]) {
    const d = parseDirective(
      `identifier: com.example.app\nappVersion: ${version}\natmoVersion: v0.4.0\n`,
      { file: FILE },
    );
    assert.equal(d.appVersion, version);
  }
  for (const version of ["v01.2.3", "v1.2-rc", "1.2.3", "v1.2.3.4", "V1.2.3"]) {
    assert.equal(
      problems(`identifier: com.example.app\nappVersion: "${version}"\natmoVersion: v0.4.0\n`)
        .length,
      1,
      version,
    );
  }
});

Deno.test("aliases are followed, and more than 100 of them are refused", () => {
  const shared = HEAD + `handlers:
  - {resource: /a, method: GET, steps: &steps [fn: hello-rs]}
  - {resource: /b, method: GET, steps: *steps}
`;
  const d = parseDirective(shared, { file: FILE, runnables: RUNNABLES });
  assert.deepEqual(d.handlers[1]?.steps, d.handlers[0]?.steps);

  const many = Array.from(
    { length: 101 },
    (_, i) => `  - {resource: /r${i}, method: GET, steps: *steps}`,
  );
  const bomb = HEAD + `handlers:
  - {resource: /a, method: GET, steps: &steps [fn: hello-rs]}
${many.join("\n")}
`;
  assert.deepEqual(problems(bomb), [
    "Directive.yaml:106:43: handlers[101].steps: more than 100 aliases; write the values out",
  ]);
});

Deno.test("an oversized Directive is refused before parsing", () => {
  assert.throws(
    () => parseDirective("#".repeat((1 << 20) + 1), { file: FILE }),
    RangeError,
  );
});

Deno.test("loadDirectiveFile names the path it cannot read", async () => {
  await assert.rejects(
    () => loadDirectiveFile("no/such/Directive.yaml"),
    (err: unknown) => {
      assert.ok(err instanceof Error);
      assert.match(err.message, /^cannot read Directive file "no\/such\/Directive\.yaml": /);
      assert.ok(err.cause instanceof Deno.errors.NotFound);
      return true;
    },
  );
  const folder = new URL(".", import.meta.url).pathname;
  await assert.rejects(() => loadDirectiveFile(folder), /not a regular file/);
});

// ------------------------------------------------------------------ RouteTable

function table(routes: readonly [string, string][]): RouteTable {
  const handlers = routes.map(([method, resource]) =>
    `  - {resource: "${resource}", method: ${method}, steps: [fn: hello-rs]}`
  );
  return new RouteTable(
    parseDirective(HEAD + "handlers:\n" + handlers.join("\n") + "\n", { file: FILE }),
  );
}

function found(routes: RouteTable, method: string, path: string): [string, Record<string, string>] {
  const m = routes.match(method, path);
  assert.equal(m.kind, "found", `${method} ${path}: ${JSON.stringify(m)}`);
  if (m.kind !== "found") throw new Error("unreachable");
  return [`${m.handler.method} ${m.handler.resource}`, { ...m.params }];
}

Deno.test("RouteTable matches :params to one non-empty segment", () => {
  const routes = table([["GET", "/users/:id"], ["GET", "/users/:id/repos/:repo"], ["GET", "/"]]);
  assert.deepEqual(found(routes, "GET", "/users/42"), ["GET /users/:id", { id: "42" }]);
  assert.deepEqual(found(routes, "GET", "/users/42/repos/atmo"), [
    "GET /users/:id/repos/:repo",
    { id: "42", repo: "atmo" },
  ]);
  assert.deepEqual(found(routes, "GET", "/"), ["GET /", {}]);
  for (const path of ["/users", "/users/", "/users//repos/x", "/users/42/", "", "users/42"]) {
    assert.deepEqual(routes.match("GET", path), { kind: "not-found" }, path);
  }
  // A plain object (its JSON is cheaper to make), holding the params only as own properties.
  const m = routes.match("GET", "/users/7");
  assert.ok(m.kind === "found");
  assert.deepEqual(Object.getOwnPropertyNames(m.params), ["id"]);
  assert.equal(Object.hasOwn(m.params, "toString"), false);
});

Deno.test("RouteTable gives a trailing catch-all the rest of the path with its leading /", () => {
  const routes = table([["GET", "/files/*path"], ["GET", "/*all"]]);
  assert.deepEqual(found(routes, "GET", "/files/a/b.txt"), ["GET /files/*path", {
    path: "/a/b.txt",
  }]);
  assert.deepEqual(found(routes, "GET", "/files/"), ["GET /files/*path", { path: "/" }]);
  assert.deepEqual(found(routes, "GET", "/files"), ["GET /*all", { all: "/files" }]);
  assert.deepEqual(found(routes, "GET", "/"), ["GET /*all", { all: "/" }]);
  const only = table([["GET", "/files/*path"]]);
  assert.deepEqual(only.match("GET", "/files"), { kind: "not-found" });
});

Deno.test("RouteTable answers 404 for unknown paths and 405 with the allowed methods", () => {
  const routes = table([
    ["POST", "/users/:id"],
    ["GET", "/users/:id"],
    ["DELETE", "/users/new"],
    ["PUT", "/users/*rest"],
  ]);
  assert.deepEqual(routes.match("GET", "/nope"), { kind: "not-found" });
  assert.deepEqual(routes.match("PATCH", "/users/7"), {
    kind: "method-not-allowed",
    allowed: ["GET", "POST", "PUT"],
  });
  assert.deepEqual(routes.match("PATCH", "/users/new"), {
    kind: "method-not-allowed",
    allowed: ["GET", "POST", "PUT", "DELETE"],
  });
  // HEAD does not fall back to GET (Atmo's router does not either); methods are case-sensitive.
  assert.deepEqual(routes.match("HEAD", "/users/7"), {
    kind: "method-not-allowed",
    allowed: ["GET", "POST", "PUT"],
  });
  assert.equal(routes.match("get", "/users/7").kind, "method-not-allowed");
});

Deno.test("RouteTable prefers static segments over params over catch-alls", () => {
  const routes = table([
    ["GET", "/users/:id"],
    ["GET", "/users/new"],
    ["GET", "/users/:id/posts"],
    ["GET", "/users/*rest"],
    ["GET", "/:x/b"],
    ["GET", "/a/*rest"],
  ]);
  assert.deepEqual(found(routes, "GET", "/users/new"), ["GET /users/new", {}]);
  assert.deepEqual(found(routes, "GET", "/users/7"), ["GET /users/:id", { id: "7" }]);
  // "new" is static for /users/new, but only /users/:id/posts goes on: no dead end.
  assert.deepEqual(found(routes, "GET", "/users/new/posts"), ["GET /users/:id/posts", {
    id: "new",
  }]);
  assert.deepEqual(found(routes, "GET", "/users/7/likes"), ["GET /users/*rest", {
    rest: "/7/likes",
  }]);
  assert.deepEqual(found(routes, "GET", "/a/b"), ["GET /a/*rest", { rest: "/b" }]);
  assert.deepEqual(found(routes, "GET", "/z/b"), ["GET /:x/b", { x: "z" }]);
  // Only the request's method competes.
  const mixed = table([["POST", "/users/new"], ["GET", "/users/:id"]]);
  assert.deepEqual(found(mixed, "GET", "/users/new"), ["GET /users/:id", { id: "new" }]);
});

Deno.test("RouteTable percent-decodes params and compares static segments decoded", () => {
  const routes = table([
    ["GET", "/users/:name"],
    ["GET", "/hello"],
    ["GET", "/files/*path"],
    ["GET", "/caf%C3%A9"],
  ]);
  assert.deepEqual(found(routes, "GET", "/users/J%C3%BCrgen"), ["GET /users/:name", {
    name: "Jürgen",
  }]);
  assert.deepEqual(found(routes, "GET", "/users/a%2Fb"), ["GET /users/:name", { name: "a/b" }]);
  assert.deepEqual(found(routes, "GET", "/users/a+b%20c"), ["GET /users/:name", {
    name: "a+b c",
  }]);
  assert.deepEqual(found(routes, "GET", "/hel%6Co"), ["GET /hello", {}]);
  assert.deepEqual(found(routes, "GET", "/café"), ["GET /caf%C3%A9", {}]);
  assert.deepEqual(found(routes, "GET", "/caf%C3%A9"), ["GET /caf%C3%A9", {}]);
  assert.deepEqual(found(routes, "GET", "/files/a%20b/c"), ["GET /files/*path", {
    path: "/a b/c",
  }]);
  assert.deepEqual(routes.match("GET", "/users/%E0%A4%A"), { kind: "not-found" });
});

Deno.test("RouteTable compiles many routes and matches each one back", () => {
  const list: [string, string][] = [];
  for (let i = 0; i < 300; i++) {
    list.push(["GET", `/api/v${i % 3}/items${i}/:id`]);
    list.push(["POST", `/api/v${i % 3}/items${i}/:id/*rest`]);
  }
  const routes = table(list);
  assert.equal(routes.size, 600);
  for (let i = 0; i < 300; i += 37) {
    assert.deepEqual(found(routes, "GET", `/api/v${i % 3}/items${i}/x`), [
      `GET /api/v${i % 3}/items${i}/:id`,
      { id: "x" },
    ]);
    assert.deepEqual(found(routes, "POST", `/api/v${i % 3}/items${i}/x/y/z`), [
      `POST /api/v${i % 3}/items${i}/:id/*rest`,
      { id: "x", rest: "/y/z" },
    ]);
  }
});

Deno.test("route params are own properties of a plain object, __proto__ and constructor too", () => {
  const d = parseDirective(
    HEAD + `handlers:
  - type: request
    resource: /p/:__proto__/:constructor/*rest
    method: GET
    steps:
      - fn: hello-rs
`,
    { file: FILE, runnables: RUNNABLES },
  );
  const m = new RouteTable(d).match("GET", "/p/a/b/c/d");
  assert.equal(m.kind, "found");
  const params = m.kind === "found" ? m.params : {};
  assert.equal(Object.getPrototypeOf(params), Object.prototype);
  assert.deepEqual(Object.keys(params), ["__proto__", "constructor", "rest"]);
  assert.equal(Object.hasOwn(params, "__proto__") && params["__proto__"], "a");
  assert.equal(params.constructor as unknown, "b");
  // What the invocation header carries, and the sat parses, is the same.
  assert.deepEqual(
    Object.entries(JSON.parse(JSON.stringify(params))),
    [["__proto__", "a"], ["constructor", "b"], ["rest", "/c/d"]],
  );
  const plain = new RouteTable(d).match("GET", "/nothing");
  assert.equal(plain.kind, "not-found");
});
