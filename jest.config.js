/**
 * Two projects in one run: every test against Express 5 (the dev dependency), and the integration tests
 * again against Express 4 (`express4` is an npm alias of express@4), since the middleware supports both.
 * @type {import('jest').Config}
 */
const shared = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.json' }] },
};

module.exports = {
  testTimeout: 20000,
  globalSetup: '<rootDir>/test/global-setup.js',
  projects: [
    { ...shared, displayName: 'express5', testMatch: ['**/*.test.ts'], globals: { EXPRESS_MAJOR: 5 } },
    {
      ...shared,
      displayName: 'express4',
      testMatch: ['<rootDir>/test/middleware.test.ts', '<rootDir>/test/secrets.test.ts'],
      moduleNameMapper: { '^express$': 'express4' },
      globals: { EXPRESS_MAJOR: 4 },
    },
  ],
};
