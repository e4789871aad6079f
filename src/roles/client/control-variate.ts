/**
 * A client's SCAFFOLD control variate c_i (Karimireddy et al. 2020, option II), zeros at first and
 * after a restart. Each round it corrects the local steps by c − c_i, then moves to
 *   c_i⁺ = c_i − c + (x − y)/(K·η)   (x the model sent, y the model trained, K steps of rate η),
 * and sends the server's step with its update: c + (W/(N·w_i))·(c_i⁺ − c_i), W the round's selected
 * weight, N the clients, w_i its own weight, so that the round's weighted average is c + (1/N)·Σ(c_i⁺ − c_i).
 * c_i⁺ is kept only once its update counted: the next model this client is sent says the last round
 * it was counted in (`counted`), and a c_i⁺ of that round is kept, any other dropped (its round ran
 * again without it, or closed without it), so c_i stays what the server's c has counted.
 * c_i never holds a value beyond what a model can (the experiment's range): a server control variate
 * made up by a switch that replaced the model could otherwise spoil every later round of this client's.
 * A step that would go beyond it fails the round and forgets c_i (`reset`), as does training that
 * goes beyond it (trainer.ts).
 */
import { firstBeyond } from '../../he/bounds';

export class ControlVariate {
  private own: Float32Array;
  /** c_i⁺, and the round and opening that made it. */
  private pending?: { round: number; attempt: string; next: Float32Array };

  constructor(
    parameters: number,
    /** N: every client of the experiment. */
    private readonly clients: number,
    /** The largest |value| a model holds (he/bounds.ts): no honest c_i comes near it. */
    private readonly limit: number,
  ) {
    this.own = new Float32Array(parameters);
  }

  /**
   * A model for `round` (opening `attempt`) arrived, saying the last round this client was counted
   * in: c_i⁺ of that round is kept; of another round or opening, dropped.
   */
  settle(round: number, attempt: string, countedIn: number | undefined): void {
    const pending = this.pending;
    if (!pending || (pending.round === round && pending.attempt === attempt)) return;
    if (pending.round === countedIn) this.own = pending.next;
    this.pending = undefined;
  }

  /** c − c_i: what each local step adds to the gradient. */
  correction(server: Float32Array): Float32Array {
    return Float32Array.from(server, (c, i) => c - this.own[i]);
  }

  /**
   * c_i⁺ from the round's training (pending until `settle` says its round closed), and the second
   * half of the update: the server's control variate moved by this client's share of the step. `share`: w_i / W.
   */
  step(opening: { round: number; attempt: string }, server: Float32Array, start: Float32Array, trained: Float32Array, stepsTimesRate: number, share: number): Float32Array {
    const next = new Float32Array(this.own.length);
    const sent = new Float32Array(this.own.length);
    const scale = 1 / (this.clients * share);
    for (let i = 0; i < next.length; i++) {
      next[i] = this.own[i] - server[i] + (start[i] - trained[i]) / stepsTimesRate;
      sent[i] = server[i] + scale * (next[i] - this.own[i]);
    }
    // Beyond the range, it came of a made-up server control variate (or a c_i kept from one): nothing
    // is sent, as a step sent but not kept would move the server's c by what this client never holds.
    const beyond = firstBeyond(next, this.limit);
    if (beyond >= 0) {
      this.reset();
      throw new Error(`its control variate went to ${next[beyond]} at ${beyond}, beyond ±${this.limit}: it is reset to zero, as after a restart`);
    }
    this.pending = { ...opening, next };
    return sent;
  }

  /** Forgets c_i, as a client started anew does (zeros): training with it went beyond the range. */
  reset(): void {
    this.own = new Float32Array(this.own.length);
    this.pending = undefined;
  }
}
