const SEAL = require('node-seal/throws_wasm_node_umd.js');
(async () => {
  let t = Date.now(); const seal = await SEAL(); console.log('seal load ms', Date.now() - t);
  for (const [N, bits, scaleBits] of [[4096, [54, 54], 40], [4096, [54, 54], 45]]) {
    const parms = seal.EncryptionParameters(seal.SchemeType.ckks);
    parms.setPolyModulusDegree(N); parms.setCoeffModulus(seal.CoeffModulus.Create(N, Int32Array.from(bits)));
    const context = seal.Context(parms, true, seal.SecurityLevel.tc128);
    const kg = seal.KeyGenerator(context); const sk = kg.secretKey(); const pk = kg.createPublicKey();
    const enc = seal.CKKSEncoder(context); const slots = enc.slotCount; const scale = Math.pow(2, scaleBits);
    const encryptor = seal.Encryptor(context, pk, sk); const decryptor = seal.Decryptor(context, sk); const evaluator = seal.Evaluator(context);
    const P = 101770; const chunks = Math.ceil(P / slots);
    const updates = Array.from({ length: 12 }, (_, k) => Float64Array.from({ length: P }, (_, i) => Math.sin(i * 0.37 + k) * 0.3 / 12));
    const pkBytes = pk.saveArray(seal.ComprModeType.zstd).length;
    for (const mode of ['public', 'seeded']) {
      let t = Date.now(); const bytes = []; let total = 0;
      let encodeMs = 0, encryptMs = 0, saveMs = 0;
      for (const u of updates) {
        const cts = [];
        for (let c = 0; c < chunks; c++) {
          let a = performance.now();
          const pt = seal.PlainText(); const slice = new Float64Array(slots); slice.set(u.subarray(c * slots, (c + 1) * slots));
          enc.encode(slice, scale, pt); let b = performance.now(); encodeMs += b - a;
          let arr;
          if (mode === 'public') { const ct = encryptor.encrypt(pt); let c2 = performance.now(); encryptMs += c2 - b; arr = ct.saveArray(seal.ComprModeType.zstd); saveMs += performance.now() - c2; ct.delete(); }
          else { const s = encryptor.encryptSymmetricSerializable(pt); let c2 = performance.now(); encryptMs += c2 - b; arr = s.saveArray(seal.ComprModeType.zstd); saveMs += performance.now() - c2; s.delete(); }
          pt.delete(); cts.push(arr); total += arr.length;
        }
        bytes.push(cts);
      }
      const encMs = (Date.now() - t) / 12;
      t = Date.now(); let loadMs = 0, addMs = 0;
      const sums = [];
      for (let c = 0; c < chunks; c++) {
        const acc = seal.CipherText(); acc.loadArray(context, bytes[0][c]);
        for (let k = 1; k < 12; k++) { let a = performance.now(); const ct = seal.CipherText(); ct.loadArray(context, bytes[k][c]); let b = performance.now(); loadMs += b - a; evaluator.add(acc, ct, acc); addMs += performance.now() - b; ct.delete(); }
        sums.push(acc.saveArray(seal.ComprModeType.zstd)); acc.delete();
      }
      const sumMs = Date.now() - t;
      t = Date.now(); let err = 0, maxAbs = 0; const expect = new Float64Array(P); for (const u of updates) for (let i = 0; i < P; i++) expect[i] += u[i];
      for (let c = 0; c < chunks; c++) { const ct = seal.CipherText(); ct.loadArray(context, sums[c]); const pt = decryptor.decrypt(ct); const v = enc.decode(pt); for (let i = 0; i < slots && c * slots + i < P; i++) { err = Math.max(err, Math.abs(v[i] - expect[c * slots + i])); maxAbs = Math.max(maxAbs, Math.abs(expect[c*slots+i])); } ct.delete(); pt.delete(); }
      const decMs = Date.now() - t;
      console.log(`2^${scaleBits} ${mode}: ${(total / 12 / P).toFixed(2)} B/param (${(total / 12 / P / 4).toFixed(2)}x), encrypt ${encMs.toFixed(0)} ms/100k [encode ${(encodeMs/12).toFixed(0)} enc ${(encryptMs/12).toFixed(0)} save ${(saveMs/12).toFixed(0)}], sum12 ${sumMs} ms [load ${loadMs.toFixed(0)} add ${addMs.toFixed(0)}], decrypt ${decMs} ms, err ${err.toExponential(2)} rel ${(err / maxAbs).toExponential(2)}, pk ${pkBytes} B`);
    }
  }
})();
