/**
 * Handshake patterns as data (Noise spec rev 34 §7), written in the spec's own notation and
 * parsed once into token lists that one generic engine runs. PSK modifiers (§9.3) apply on top.
 *
 * @module
 */

/** A token of a message pattern (Noise §7.1, §9.2). */
export type Token = "e" | "s" | "ee" | "es" | "se" | "ss" | "psk";

/** A handshake pattern: pre-messages and the message patterns, alternating from the initiator. */
export interface HandshakePattern {
  readonly name: string;
  /** Keys the responder knows in advance of the initiator (`-> s ...`). */
  readonly initiatorPreMessage: readonly Token[];
  /** Keys the initiator knows in advance of the responder (`<- s ...`). */
  readonly responderPreMessage: readonly Token[];
  /** Message patterns; even indexes are sent by the initiator, odd ones by the responder. */
  readonly messages: readonly (readonly Token[])[];
  /** One-way patterns (§7.4): every message, transport ones too, goes initiator → responder. */
  readonly oneWay: boolean;
  /** True when a `psk` token appears (§9.2: then `e` also calls MixKey). */
  readonly psk: boolean;
}

// Noise §7.4 (one-way), §7.5 (interactive, fundamental) and §7.6 (deferred), in the spec's
// notation: pre-messages before "...", messages separated by ";".
const NOTATION: Readonly<Record<string, string>> = {
  N: "<- s ... -> e, es",
  K: "-> s; <- s ... -> e, es, ss",
  X: "<- s ... -> e, es, s, ss",
  NN: "-> e; <- e, ee",
  NK: "<- s ... -> e, es; <- e, ee",
  NX: "-> e; <- e, ee, s, es",
  KN: "-> s ... -> e; <- e, ee, se",
  KK: "-> s; <- s ... -> e, es, ss; <- e, ee, se",
  KX: "-> s ... -> e; <- e, ee, se, s, es",
  XN: "-> e; <- e, ee; -> s, se",
  XK: "<- s ... -> e, es; <- e, ee; -> s, se",
  XX: "-> e; <- e, ee, s, es; -> s, se",
  IN: "-> e, s; <- e, ee, se",
  IK: "<- s ... -> e, es, s, ss; <- e, ee, se",
  IX: "-> e, s; <- e, ee, se, s, es",
  NK1: "<- s ... -> e; <- e, ee, es",
  NX1: "-> e; <- e, ee, s; -> es",
  X1N: "-> e; <- e, ee; -> s; <- se",
  X1K: "<- s ... -> e, es; <- e, ee; -> s; <- se",
  XK1: "<- s ... -> e; <- e, ee, es; -> s, se",
  X1K1: "<- s ... -> e; <- e, ee, es; -> s; <- se",
  X1X: "-> e; <- e, ee, s, es; -> s; <- se",
  XX1: "-> e; <- e, ee, s; -> es, s, se",
  X1X1: "-> e; <- e, ee, s; -> es, s; <- se",
  K1N: "-> s ... -> e; <- e, ee; -> se",
  K1K: "-> s; <- s ... -> e, es; <- e, ee; -> se",
  KK1: "-> s; <- s ... -> e; <- e, ee, se, es",
  K1K1: "-> s; <- s ... -> e; <- e, ee, es; -> se",
  K1X: "-> s ... -> e; <- e, ee, s, es; -> se",
  KX1: "-> s ... -> e; <- e, ee, se, s; -> es",
  K1X1: "-> s ... -> e; <- e, ee, s; -> se, es",
  I1N: "-> e, s; <- e, ee; -> se",
  I1K: "<- s ... -> e, es, s; <- e, ee; -> se",
  IK1: "<- s ... -> e, s; <- e, ee, se, es",
  I1K1: "<- s ... -> e, s; <- e, ee, es; -> se",
  I1X: "-> e, s; <- e, ee, s, es; -> se",
  IX1: "-> e, s; <- e, ee, se, s; -> es",
  I1X1: "-> e, s; <- e, ee, s; -> se, es",
};

const TOKENS: ReadonlySet<string> = new Set(["e", "s", "ee", "es", "se", "ss", "psk"]);
const ONE_WAY: ReadonlySet<string> = new Set(["N", "K", "X"]);

/** Names of every base pattern this engine implements (without modifiers). */
export const PATTERN_NAMES: readonly string[] = Object.freeze(Object.keys(NOTATION));

function parseTokens(text: string): Token[] {
  return text.split(",").map((t) => t.trim()).filter((t) => t.length > 0).map((t) => {
    if (!TOKENS.has(t)) throw new SyntaxError(`unknown Noise token "${t}"`);
    return t as Token;
  });
}

function parseNotation(name: string, notation: string): HandshakePattern {
  const [pre, body] = notation.includes("...") ? notation.split("...") as [string, string] : [
    "",
    notation,
  ];
  let initiatorPreMessage: Token[] = [];
  let responderPreMessage: Token[] = [];
  for (const line of pre.split(";").map((l) => l.trim()).filter((l) => l)) {
    if (line.startsWith("->")) initiatorPreMessage = parseTokens(line.slice(2));
    else responderPreMessage = parseTokens(line.slice(2));
  }
  const messages = body.split(";").map((l) => l.trim()).map((line, i) => {
    // The arrows must alternate, starting from the initiator (Noise §7.1).
    const arrow = i % 2 === 0 || ONE_WAY.has(name) ? "->" : "<-";
    if (!line.startsWith(arrow)) throw new SyntaxError(`pattern ${name}: message ${i} order`);
    return parseTokens(line.slice(2));
  });
  return {
    name,
    initiatorPreMessage,
    responderPreMessage,
    messages,
    oneWay: ONE_WAY.has(name),
    psk: false,
  };
}

/** Applies `pskN` modifiers (Noise §9.3): psk0 starts the first message, pskN ends message N. */
function applyPsk(pattern: HandshakePattern, modifiers: readonly string[]): HandshakePattern {
  const messages = pattern.messages.map((m) => [...m]);
  for (const modifier of modifiers) {
    const match = /^psk(\d+)$/.exec(modifier);
    if (!match) throw new RangeError(`unsupported pattern modifier "${modifier}"`);
    const index = Number(match[1]);
    if (index === 0) messages[0]?.unshift("psk");
    else if (index <= messages.length) messages[index - 1]?.push("psk");
    else {
      throw new RangeError(`modifier "${modifier}" names a message that pattern has not got`);
    }
  }
  return {
    ...pattern,
    name: `${pattern.name}${modifiers.join("+")}`,
    messages,
    psk: modifiers.length > 0,
  };
}

const PARSED = new Map<string, HandshakePattern>(
  Object.entries(NOTATION).map(([name, notation]) => [name, parseNotation(name, notation)]),
);

/**
 * The handshake pattern for a name such as `XX`, `IK`, `X1K1` or `NNpsk0+psk2`.
 *
 * @throws RangeError when the pattern or a modifier is not implemented
 * @example
 * ```ts
 * handshakePattern("XX").messages; // [["e"], ["e","ee","s","es"], ["s","se"]]
 * ```
 */
export function handshakePattern(name: string): HandshakePattern {
  const match = /^([NKXI]1?[NKXI]?1?)((?:psk\d+)(?:\+psk\d+)*)?$/.exec(name);
  const base = match ? PARSED.get(match[1] ?? "") : undefined;
  if (!match || !base) {
    throw new RangeError(
      `unsupported handshake pattern "${name}"; implemented: ${PATTERN_NAMES.join(", ")} ` +
        `(with optional pskN modifiers)`,
    );
  }
  return match[2] ? applyPsk(base, match[2].split("+")) : base;
}
