/**
 * The reliability and security suite (issue 4): faults, hostile input, races, load. Run with
 * `npm run test:reliability`; kept out of `npm test` (its files are *.reliability.ts).
 * @type {import('jest').Config}
 */
module.exports = {
  rootDir: '../..',
  testEnvironment: 'node',
  roots: ['<rootDir>/test/reliability'],
  testMatch: ['**/*.reliability.ts'],
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.json' }] },
  // Timed figures (budgets, event-loop delay) are only meaningful when the files do not compete for the CPU.
  maxWorkers: 1,
  testTimeout: 120000,
  reporters: ['default', '<rootDir>/test/reliability/summary-reporter.js'],
};
