/**
 * What an attacking client does to its round (config.json: `others[addr].attack`), for robustness
 * studies. The change it sends is worked on, not its weights: an update is the global model plus a
 * change, and a robust rule judges the changes. Seeded by the attack's seed and the round, so a run
 * can be repeated exactly.
 */
import type { Attack } from '../../config/schema';
import type { Dataset } from '../../data/mnist';
import { normal, seededRandom } from '../../data/random';

/** The weights it sends after training `global` to `trained` in `round`; `client` (its index) keeps two attackers' noise apart. */
export function attackedWeights(attack: Attack, global: Float32Array, trained: Float32Array, round: number, client = 0): Float32Array {
  const scale = attack.scale ?? 1;
  const out = new Float32Array(trained.length);
  switch (attack.kind) {
    case 'sign_flip':
      for (let i = 0; i < out.length; i++) out[i] = global[i] - scale * (trained[i] - global[i]);
      return out;
    case 'gaussian': {
      const random = seededRandom(attack.seed * 7919 + round * 131 + client * 1_000_003);
      for (let i = 0; i < out.length; i++) out[i] = global[i] + scale * normal(random);
      return out;
    }
    case 'constant':
      for (let i = 0; i < out.length; i++) out[i] = global[i] + scale;
      return out;
    case 'label_flip':
      return trained; // the harm is in what it trained on (flippedLabels)
  }
}

/** Its training data with every label c read as classes − 1 − c (label_flip); the same data otherwise. */
export function attackedData(attack: Attack | undefined, data: Dataset, classes: number): Dataset {
  if (attack?.kind !== 'label_flip') return data;
  return { ...data, labels: Uint8Array.from(data.labels, (label) => classes - 1 - label) };
}
