/** Randomness DP noise is drawn from: the operating system's (noise an observer could predict protects nothing). */
import { randomBytes } from 'node:crypto';

/** Uniform in [0, 1) from crypto, 48 bits a draw, read in blocks. */
export function secureUniform(): () => number {
  let block = randomBytes(0);
  let at = 0;
  return () => {
    if (at + 6 > block.length) [block, at] = [randomBytes(6 * 4096), 0];
    const value = block.readUIntBE(at, 6) / 2 ** 48;
    at += 6;
    return value;
  };
}
