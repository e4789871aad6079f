/** A client: trains on its slice of the data and reports its update upstream. */
import type { ClientNodeConfig } from '../config/schema';
import { Role } from './role';

export class ClientRole extends Role<ClientNodeConfig> {
  status() {
    const { client_number, index, upstream, experiment } = this.config;
    return { role: 'client', experiment, slice: { index, of: client_number }, upstream, rounds_done: this.iterations.rounds.length };
  }
}
