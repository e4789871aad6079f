/**
 * How a client trains a round, from its model's instructions (the meta, and its own part, `fit`):
 * only what training takes, and no more than its experiment's config: at most its epochs, its
 * learning rate and (FedProx alone) its μ, and its batch size. Strategies tell clients the config's
 * own; a node above a client that asked for more (a hundred epochs at batches of one) would hold the
 * turns of every client sharing its process for hours, batches larger than the one a client timed
 * its step by (trainer.ts) would hold its event loop past what its health checks allow (every client
 * of its process would be taken for down), and a learning rate of 10 makes an update diverge.
 */
import type { Settings } from '../../config/schema';
import { badRequest } from '../../net/errors';
import type { ClientInstructions } from '../../strategy/strategy';
import type { RoundMeta } from '../../wire/control';

export function roundInstructions(meta: RoundMeta, training: Settings['training']): ClientInstructions {
  // Named one by one: the meta may carry keys of its own, and none of them reaches the training.
  const { epochs, batchSize, learningRate, proximalMu } = { ...meta, ...meta.fit };
  if (epochs > training.epochs || batchSize !== training.batch_size) {
    throw badRequest(`the model asks ${epochs} epochs in batches of ${batchSize}; this experiment trains at most ${training.epochs} epochs in batches of ${training.batch_size}`);
  }
  if (learningRate > training.learning_rate) throw badRequest(`the model asks a learning rate of ${learningRate}; this experiment's is at most ${training.learning_rate}`);
  const mu = training.strategy === 'fedprox' ? training.proximal_mu : 0;
  if ((proximalMu ?? 0) > mu) throw badRequest(`the model asks a proximal term of μ = ${proximalMu}; this experiment's is at most ${mu} (training.strategy ${training.strategy})`);
  return { epochs, batchSize, learningRate, ...(proximalMu !== undefined ? { proximalMu } : {}) };
}
