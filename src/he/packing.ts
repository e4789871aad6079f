/**
 * How ciphertext lists cross to and from the HE threads, copied once at most. To a thread: in one
 * buffer made for it, one allocation to hand over rather than one per ciphertext (the body they came
 * in cannot be handed over: its buffer is the whole message, which this thread still reads). From a
 * thread: the ciphertexts it saved, each buffer moved as it is (handBack).
 *
 * Not shared memory, which would spare the copy: V8 counts a SharedArrayBuffer toward no thread's
 * garbage collection, and an HE thread allocates so little that it collects seldom, so every body it
 * was sent would stay (measured: 400 bodies of 8 MB posted to a thread that reads a byte of each
 * peaked at 2,044 MB shared, 178 MB handed over).
 */
export interface Packed {
  packed: ArrayBuffer;
  lengths: number[];
}

export function pack(list: Uint8Array[]): Packed {
  const packed = new Uint8Array(list.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of list) {
    packed.set(c, at);
    at += c.length;
  }
  return { packed: packed.buffer, lengths: list.map((c) => c.length) };
}

export function unpack({ packed, lengths }: Packed): Uint8Array[] {
  let at = 0;
  return lengths.map((length) => new Uint8Array(packed, (at += length) - length, length));
}

/**
 * What a thread's answer hands back rather than copies: the buffers of the ciphertexts it made, each
 * its own (SEAL's saveArray makes one of the exact length), moved as they are, not packed into one.
 */
export function handBack(list: unknown[]): ArrayBuffer[] {
  return [...new Set(list.filter(ArrayBuffer.isView).map((c) => c.buffer as ArrayBuffer))];
}
