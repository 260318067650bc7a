// Builds dist/ once before any test runs: the example app, child processes and the packaging test all load the
// built package, and building in the middle of a run (npm pack's prepack) would race them.
const { execFileSync } = require('node:child_process');
const path = require('node:path');

module.exports = function buildOnce() {
  const root = path.resolve(__dirname, '..');
  execFileSync(process.execPath, [require.resolve('tsup/dist/cli-default.js', { paths: [root] })], {
    cwd: root,
    stdio: ['ignore', 'ignore', 'inherit'],
  });
};
