/** SCAFFOLD's client side (Karimireddy et al. 2020, option II), worked by hand. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ControlVariate } from '../../../../src/roles/client/control-variate';

const values = (a: Float32Array) => [...a];

describe("a client's control variate", () => {
  it('corrects by c − c_i, moves to c_i − c + (x − y)/(K·η), and keeps it only once the server says it counted', () => {
    const control = new ControlVariate(2, 4, 1e6);
    const server = Float32Array.from([1, -1]);
    assert.deepEqual(values(control.correction(server)), [1, -1]); // c_i starts at zero
    // x (0, 0) trained to y (−1, 0) in K·η 0.5: (x − y)/(K·η) = (2, 0), so c_i⁺ = 0 − (1, −1) + (2, 0) = (1, 1).
    // Its share w_i/W is 1/4 of 4 clients: the step goes unscaled, c + (c_i⁺ − c_i) = (2, 0).
    const train = (round: number, attempt: string) => control.step({ round, attempt }, server, Float32Array.from([0, 0]), Float32Array.from([-1, 0]), 0.5, 0.25);
    assert.deepEqual(values(train(1, 'a')), [2, 0]);
    assert.deepEqual(values(control.correction(server)), [1, -1], 'not kept before its round is known to have counted it');
    control.settle(1, 'b', undefined); // round 1 runs again: its first opening did not count
    assert.deepEqual(values(control.correction(server)), [1, -1]);
    train(1, 'b');
    control.settle(2, 'c', undefined); // round 1 closed without this client
    assert.deepEqual(values(control.correction(server)), [1, -1]);
    train(2, 'c');
    control.settle(3, 'd', 2); // round 2 counted it
    assert.deepEqual(values(control.correction(server)), [0, -2]);
    // c_i (1, 1) now: c_i⁺ = (1, 1) − (1, −1) + (2, 0) = (2, 2), a step of (1, 1).
    assert.deepEqual(values(train(3, 'd')), [2, 0]);
    control.settle(3, 'd', 2); // the same opening again (a model sent twice): nothing changes
    control.settle(5, 'e', 3); // counted in round 3, though not in round 4
    assert.deepEqual(values(control.correction(server)), [-1, -3]);
  });

  it("sends shares whose sample-weighted average is SCAFFOLD's c + (1/N)·Σ Δc_i", () => {
    // Two clients of weights 1 and 3, both in the round (W = 4), N = 2.
    const server = Float32Array.from([0.5]);
    const a = new ControlVariate(1, 2, 1e6);
    const b = new ControlVariate(1, 2, 1e6);
    const fromA = a.step({ round: 1, attempt: 'a' }, server, Float32Array.from([0]), Float32Array.from([-0.2]), 0.1, 1 / 4); // Δc_a = −0.5 + 2 = 1.5
    const fromB = b.step({ round: 1, attempt: 'a' }, server, Float32Array.from([0]), Float32Array.from([0.05]), 0.1, 3 / 4); // Δc_b = −0.5 − 0.5 = −1
    const average = (1 * fromA[0] + 3 * fromB[0]) / 4;
    assert.ok(Math.abs(average - (0.5 + (1.5 - 1) / 2)) < 1e-6, `average ${average}`);
  });

  it('never keeps nor sends a step beyond the range a model holds (a made-up server control variate): the round fails and c_i is forgotten', () => {
    const control = new ControlVariate(2, 4, 1000);
    const honest = Float32Array.from([1, -1]);
    const step = (round: number, attempt: string, c: number) => control.step({ round, attempt }, Float32Array.from([c, 0]), Float32Array.from([0, 0]), Float32Array.from([-1, 0]), 0.5, 0.25);
    // Within the range it is kept: c = (500, 0) makes c_i⁺ = 0 − 500 + 2 = −498.
    step(1, 'a', 500);
    control.settle(2, 'b', 1);
    assert.deepEqual(values(control.correction(honest)), [1 + 498, -1]);
    // A switch that replaced the model sent c = (5000, 0): c_i⁺ = −498 − 5000 + 2, beyond ±1000. Nothing is sent, and c_i is zero again.
    assert.throws(() => step(2, 'b', 5000), /went to -5496 at 0, beyond ±1000: it is reset to zero, as after a restart/);
    control.settle(3, 'c', 2); // even were round 2 said to have counted it
    assert.deepEqual(values(control.correction(honest)), [1, -1]);
  });
});
