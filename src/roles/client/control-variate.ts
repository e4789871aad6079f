/**
 * A client's SCAFFOLD control variate c_i (Karimireddy et al. 2020, option II), zeros at first and
 * after a restart. Each round it corrects the local steps by c − c_i, then moves to
 *   c_i⁺ = c_i − c + (x − y)/(K·η)   (x the model sent, y the model trained, K steps of rate η),
 * and sends the server's step with its update: c + (W/(N·w_i))·(c_i⁺ − c_i), W the round's selected
 * weight, N the clients, w_i its own weight, so that the round's weighted average is c + (1/N)·Σ(c_i⁺ − c_i).
 * c_i⁺ is kept only once the update was taken: a lost update leaves c_i as the server counts it.
 */
export class ControlVariate {
  private own: Float32Array;
  private pending?: Float32Array;

  constructor(
    parameters: number,
    /** N: every client of the experiment. */
    private readonly clients: number,
  ) {
    this.own = new Float32Array(parameters);
  }

  /** c − c_i: what each local step adds to the gradient. */
  correction(server: Float32Array): Float32Array {
    return Float32Array.from(server, (c, i) => c - this.own[i]);
  }

  /**
   * c_i⁺ from the round's training (kept pending until `commit`), and the second half of the update:
   * the server's control variate moved by this client's share of the step. `share`: w_i / W.
   */
  step(server: Float32Array, start: Float32Array, trained: Float32Array, stepsTimesRate: number, share: number): Float32Array {
    const next = new Float32Array(this.own.length);
    const sent = new Float32Array(this.own.length);
    const scale = 1 / (this.clients * share);
    for (let i = 0; i < next.length; i++) {
      next[i] = this.own[i] - server[i] + (start[i] - trained[i]) / stepsTimesRate;
      sent[i] = server[i] + scale * (next[i] - this.own[i]);
    }
    this.pending = next;
    return sent;
  }

  commit(): void {
    if (this.pending) [this.own, this.pending] = [this.pending, undefined];
  }
}
