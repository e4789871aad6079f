/** The strategy config.json names, with its parameters: Flower's names, lowercased. */
import type { Settings } from '../config/schema';
import { FedOpt } from './fedopt';
import { bulyan, coordinateMedian, multiKrum, trimmedMean, type ClientUpdate } from './robust';
import { FedAvg, FedAvgM, FedProx, RobustStrategy, Scaffold, type Evaluator, type Strategy } from './strategy';

export function createStrategy(training: Settings['training'], evaluator: Evaluator): Strategy {
  const f = training.num_malicious_clients;
  const robust = (rule: (updates: readonly ClientUpdate[]) => Float32Array) => new RobustStrategy(training.strategy, rule, training, evaluator);
  switch (training.strategy) {
    case 'fedavg':
      return new FedAvg(training, evaluator);
    case 'fedavgm':
      return new FedAvgM(training, evaluator);
    case 'fedprox':
      return new FedProx(training, evaluator);
    case 'scaffold':
      return new Scaffold(training, evaluator);
    case 'fedadam':
    case 'fedyogi':
    case 'fedadagrad':
      return new FedOpt(training.strategy, training, evaluator);
    case 'fedmedian':
      return robust(coordinateMedian);
    case 'fedtrimmedavg':
      return robust((updates) => trimmedMean(updates, training.beta));
    case 'krum':
      return robust((updates) => multiKrum(updates, f, 1));
    case 'multikrum':
      return robust((updates) => multiKrum(updates, f, training.num_clients_to_keep ?? 1));
    case 'bulyan':
      return robust((updates) => bulyan(updates, f));
  }
}
