/**
 * Noise protocol names (Noise spec rev 34 §8): `Noise_<pattern>_<dh>_<cipher>_<hash>`.
 *
 * @module
 */

import {
  type CipherName,
  type DhName,
  type HashName,
  isCipherName,
  isHashName,
} from "./crypto_backend.ts";
import { type HandshakePattern, handshakePattern } from "./handshake_pattern.ts";

/** A resolved Noise protocol: the pattern and the names of its three functions. */
export interface NoiseProtocol {
  readonly name: string;
  readonly pattern: HandshakePattern;
  readonly dh: DhName;
  readonly cipher: CipherName;
  readonly hash: HashName;
}

/** The protocol name is well formed but names something this engine does not implement. */
export class UnsupportedProtocolError extends RangeError {
  override readonly name = "UnsupportedProtocolError";
}

/**
 * Parses a protocol name.
 *
 * @throws SyntaxError when the name is not of the form Noise_P_D_C_H
 * @throws UnsupportedProtocolError when the pattern, DH, cipher or hash is not implemented
 * @example
 * ```ts
 * parseProtocolName("Noise_XX_25519_ChaChaPoly_SHA256").cipher; // "ChaChaPoly"
 * ```
 */
export function parseProtocolName(name: string): NoiseProtocol {
  const parts = name.split("_");
  if (parts.length !== 5 || parts[0] !== "Noise") {
    throw new SyntaxError(`"${name}" is not a Noise protocol name (Noise_PATTERN_DH_CIPHER_HASH)`);
  }
  const [, patternName, dh, cipher, hash] = parts as [string, string, string, string, string];
  if (dh !== "25519") throw new UnsupportedProtocolError(`DH function "${dh}" is not implemented`);
  if (!isCipherName(cipher)) {
    throw new UnsupportedProtocolError(
      `cipher "${cipher}" is not implemented (ChaChaPoly, AESGCM)`,
    );
  }
  if (!isHashName(hash)) {
    throw new UnsupportedProtocolError(
      `hash "${hash}" is not implemented (SHA256, SHA512, BLAKE2s, BLAKE2b)`,
    );
  }
  let pattern: HandshakePattern;
  try {
    pattern = handshakePattern(patternName);
  } catch (cause) {
    throw new UnsupportedProtocolError((cause as Error).message, { cause });
  }
  return { name, pattern, dh, cipher, hash };
}
