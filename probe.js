const { initBackend } = require('./dist/src/model/backend');
const m = require('./dist/src/model/model');
const { loadMnist, subset } = require('./dist/src/data/mnist');
const { holdOut, partition } = require('./dist/src/data/partition');
const { saveModel, loadModel } = require('./dist/src/model/store');
(async () => {
  console.log('backend', await initBackend());
  const data = loadMnist();
  const split = holdOut(data.size, 2000, 42);
  const parts = partition(split.train, data.labels, 12, { split: 'iid', seed: 42, alpha: 0.5, classes_per_client: 2 });
  const test = subset(data, split.test);
  const model = m.buildModel({ architecture: 'mlp', hidden_units: 128 }, 42);
  const w0 = m.getFlatWeights(model);
  console.log('params', w0.length, 'id', m.modelId(model), 'eval0', m.evaluate(model, test));
  let t = Date.now();
  const train = subset(data, split.train);
  for (let e = 0; e < 3; e++) { await m.train(model, train, { epochs: 1, batchSize: 32, learningRate: 0.1, seed: e }); console.log('epoch', e, m.evaluate(model, test), Date.now() - t); }
  await saveModel(model, '/tmp/mdl'); const back = await loadModel('/tmp/mdl'); console.log('reloaded', m.evaluate(back, test));
  // determinism
  const a = m.buildModel({ architecture: 'mlp', hidden_units: 128 }, 42); const b = m.buildModel({ architecture: 'mlp', hidden_units: 128 }, 42);
  const s = subset(data, parts[0]);
  await m.train(a, s, { epochs: 1, batchSize: 32, learningRate: 0.1, seed: 1 }); await m.train(b, s, { epochs: 1, batchSize: 32, learningRate: 0.1, seed: 1 });
  const fa = m.getFlatWeights(a), fb = m.getFlatWeights(b); let diff = 0; for (let i = 0; i < fa.length; i++) diff = Math.max(diff, Math.abs(fa[i] - fb[i]));
  console.log('determinism max diff', diff);
  const c = m.buildModel({ architecture: 'cnn', hidden_units: 64 }, 42); console.log('cnn params', m.parameterCount(c));
  t = Date.now(); await m.train(c, s, { epochs: 1, batchSize: 32, learningRate: 0.1, seed: 1 }); console.log('cnn epoch ms on 666', Date.now() - t);
})();
