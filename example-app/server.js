// @ts-check
'use strict';
/**
 * `npm start`: reads the configuration from the environment, builds the app and listens.
 * Bad configuration (a missing secret, an unreachable Redis, a busy port) stops it here with exit code 1.
 */
const http = require('node:http');
const { readConfig, ConfigError } = require('./config');
const { createExampleApp } = require('./app');
const { StartupError } = require('./session-store');

/** @param {string} message */
function fail(message) {
  console.error(`\nThe example app cannot start: ${message}\n`);
  process.exitCode = 1;
}

async function main() {
  let config;
  try {
    config = readConfig(process.env);
  } catch (err) {
    if (err instanceof ConfigError) return fail(err.message);
    throw err;
  }

  let example;
  try {
    example = await createExampleApp(config);
  } catch (err) {
    // polarLogout() checks its options at construction; its messages name the option and hold no secret.
    if (err instanceof StartupError || (err instanceof Error && err.name === 'PolarLogoutError'))
      return fail(err.message);
    throw err;
  }

  const server = http.createServer(example.app);
  const { port, host } = config;
  try {
    await new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve(undefined));
    });
  } catch (err) {
    await example.close();
    const code = /** @type {NodeJS.ErrnoException} */ (err).code;
    if (code === 'EADDRINUSE') return fail(`port ${port} on ${host} is already in use. Set PORT to another port.`);
    if (code === 'EACCES') return fail(`not allowed to listen on port ${port}. Set PORT to a port above 1023.`);
    throw err;
  }

  console.log(
    [
      '',
      `  express-polar-logout example: ${config.publicUrl}`,
      `  Polar:    ${example.polarLabel}${example.standin ? ` at ${example.standin.url}` : ''}`,
      `  Sessions: ${example.sessionStore.description}`,
      `  Revocation outbox: ${example.outbox.description}`,
      ...(example.standin ? [] : [`  Redirect URI to register on your Polar OAuth client: ${example.redirectUri}`]),
      `  Listening on ${host}:${port}. Ctrl+C to stop.`,
      '',
    ].join('\n'),
  );

  // First signal: stop taking requests, let revocations in flight finish, close the outbox and the stores.
  // A second signal ends the process at once (the handlers are `once`).
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    server.close();
    server.closeAllConnections();
    try {
      await example.close();
    } catch (err) {
      console.error(`Stopping failed: ${err instanceof Error ? err.name : typeof err}`);
      process.exitCode = 1;
    }
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

main().catch((err) => {
  // The name only: an unexpected error object may carry anything, and this line goes to the logs.
  console.error(`The example app failed: ${err instanceof Error ? err.name : typeof err}`);
  process.exitCode = 1;
});
