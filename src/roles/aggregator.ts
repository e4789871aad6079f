/** The aggregator: runs the rounds and builds each new global model. */
import type { AggregatorNodeConfig } from '../config/schema';
import { Role } from './role';

export class AggregatorRole extends Role<AggregatorNodeConfig> {
  status() {
    const { switches, clients, workers, experiment, settings } = this.config;
    return {
      role: 'aggregator',
      experiment,
      rounds: settings.rounds,
      switches,
      direct_clients: clients,
      workers: Object.keys(workers).length,
      rounds_done: this.iterations.rounds.length,
    };
  }
}
