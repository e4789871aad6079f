/** How HE threads hand ciphertext lists back: in one buffer, one allocation to move rather than one per ciphertext. */
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
