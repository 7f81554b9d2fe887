// deno-lint-ignore-file no-console -- a benchmark baseline: it prints where it listens.
/**
 * The baseline of the end-to-end benchmark: a plain `Deno.serve` that answers
 * `hello, <body>` to a POST, doing the same visible work as helloworld-rs.
 *
 * @module
 */

const decoder = new TextDecoder();
const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
  return new Response(`hello, ${decoder.decode(await req.arrayBuffer())}`);
});
console.log(`listening on 127.0.0.1:${server.addr.port}`);
Deno.addSignalListener("SIGTERM", () => server.shutdown().then(() => Deno.exit(0)));
