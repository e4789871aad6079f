/** A switch: combines its clients' updates without reading them and forwards one upstream. */
import type { SwitchNodeConfig } from '../config/schema';
import { Role } from './role';

export class SwitchRole extends Role<SwitchNodeConfig> {
  status() {
    const { clients, aggregator, experiment } = this.config;
    return { role: 'switch', experiment, clients, upstream: aggregator, rounds_done: this.iterations.rounds.length };
  }
}
