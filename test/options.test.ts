import { createPolarRevoker, polarLogout, PolarLogoutError, type PolarLogoutOptions } from '../lib';
import { VERSION } from '../lib/version';

const base = { clientId: 'client-id', clientSecret: 'client-secret' };

function errorOf(options: unknown): PolarLogoutError {
  try {
    polarLogout(options as PolarLogoutOptions).close();
  } catch (err) {
    expect(err).toBeInstanceOf(PolarLogoutError);
    expect((err as PolarLogoutError).code).toBe('INVALID_OPTION');
    return err as PolarLogoutError;
  }
  throw new Error('expected polarLogout() to throw');
}

describe('options are validated at construction', () => {
  it.each<[string, unknown, RegExp]>([
    ['no options', undefined, /`options` must be an object/],
    ['clientId missing', { clientSecret: 's' }, /`clientId` is required/],
    ['clientId empty', { clientId: '  ', clientSecret: 's' }, /`clientId` is required/],
    ['clientSecret missing', { clientId: 'c' }, /`clientSecret` is required/],
    ['clientSecret not a string', { clientId: 'c', clientSecret: 42 }, /`clientSecret` is required/],
    ['unknown server', { ...base, server: 'staging' }, /`server` must be one of 'production', 'sandbox'/],
    [
      'plain http baseUrl',
      { ...base, baseUrl: 'http://api.example.com' },
      /`baseUrl` must use https \(got http:\/\/api\.example\.com\)/,
    ],
    ['baseUrl not a URL', { ...base, baseUrl: 'api.polar.sh' }, /`baseUrl` is not a valid absolute URL/],
    [
      'baseUrl with credentials',
      { ...base, baseUrl: 'https://u:p@api.polar.sh' },
      /`baseUrl` must not contain credentials/,
    ],
    // Issue 13: a path (the API prefix `/v1` included) made every revocation a 404 while logouts looked fine.
    ...[
      'https://api.polar.sh/v1',
      'https://api.polar.sh/v1/',
      'https://api.polar.sh/v1/oauth2/revoke',
      'https://proxy.internal:8443/polar/',
      'http://127.0.0.1:4010//',
      'https://api.polar.sh/?x=1',
      'https://api.polar.sh?',
      'https://api.polar.sh/#top',
      'https://api.polar.sh#',
    ].map((baseUrl): [string, unknown, RegExp] => [
      `baseUrl ${baseUrl}`,
      { ...base, baseUrl },
      /`baseUrl` must be an origin only \(scheme, host and optional port\), such as https:\/\/api\.polar\.sh: no path, query or fragment\. The library adds \/v1\/oauth2\/revoke itself\.$/,
    ]),
    ['ftp baseUrl', { ...base, baseUrl: 'ftp://localhost' }, /`baseUrl` must use https/],
    ['timeoutMs zero', { ...base, timeoutMs: 0 }, /`timeoutMs` must be an integer from 1 to 120000/],
    ['timeoutMs fractional', { ...base, timeoutMs: 1.5 }, /`timeoutMs` must be an integer/],
    ['retries negative', { ...base, retries: -1 }, /`retries` must be an integer from 0 to 10/],
    ['clientAuth unknown', { ...base, clientAuth: 'private_key_jwt' }, /`clientAuth` must be one of/],
    [
      'onRevocationFailure unknown',
      { ...base, onRevocationFailure: 'ignore' },
      /`onRevocationFailure` must be one of 'continue', 'fail'/,
    ],
    ['getTokens not a function', { ...base, getTokens: 'session' }, /`getTokens` must be a function/],
    ['onLogout not a function', { ...base, onLogout: {} }, /`onLogout` must be a function/],
    [
      'redirectTo protocol-relative',
      { ...base, redirectTo: '//evil.example' },
      /`redirectTo` must not start with "\/\/"/,
    ],
    ['redirectTo relative', { ...base, redirectTo: 'home' }, /`redirectTo` must be a path starting with "\/"/],
    ['redirectTo javascript', { ...base, redirectTo: 'javascript:alert(1)' }, /`redirectTo` must be a path/],
    ['redirectTo with a newline', { ...base, redirectTo: '/a\nb' }, /`redirectTo` must be a path/],
    [
      'allowedRedirectOrigins not an array',
      { ...base, allowedRedirectOrigins: 'https://a.example' },
      /`allowedRedirectOrigins` must be an array/,
    ],
    [
      'allowedRedirectOrigins with a path',
      { ...base, allowedRedirectOrigins: ['https://a.example/x'] },
      /`allowedRedirectOrigins\[0\]` must be an origin only/,
    ],
    [
      'allowedRedirectOrigins not http',
      { ...base, allowedRedirectOrigins: ['javascript:x'] },
      /`allowedRedirectOrigins\[0\]` must be an http\(s\) origin/,
    ],
    [
      'allowedRedirectOrigins garbage',
      { ...base, allowedRedirectOrigins: ['not an origin'] },
      /`allowedRedirectOrigins\[0\]` is not an origin/,
    ],
    ['cookieName with a space', { ...base, cookieName: 'a b' }, /`cookieName` must be the session cookie name/],
    ['returnToParam empty', { ...base, returnToParam: '' }, /`returnToParam` must be a non-empty string/],
    ['methods empty', { ...base, methods: [] }, /`methods` must be a non-empty array/],
    ['methods with a bad name', { ...base, methods: ['PO ST'] }, /`methods\[0\]` must be an HTTP method name/],
    [
      'outbox without enqueue',
      { ...base, outbox: {} },
      /`outbox` must be the object returned by createRevocationOutbox/,
    ],
    ['a misspelt option', { ...base, redirecTo: '/' }, /`redirecTo` is not an option of polarLogout\(\)/],
  ])('%s', (_label, options, message) => {
    const err = errorOf(options);
    expect(err.message).toMatch(message);
    expect(err.message).toMatch(/^express-polar-logout: option `/);
    expect(err.message).not.toContain('client-secret');
  });

  it.each([
    ['https://api.polar.sh'],
    ['https://api.polar.sh/'],
    ['https://proxy.internal:8443'],
    ['http://127.0.0.1:4010'],
    ['http://localhost:4010/'],
    ['http://[::1]:4010'],
  ])('accepts baseUrl %s', (baseUrl) => {
    polarLogout({ ...base, baseUrl }).close();
  });

  it('accepts a full, valid configuration', () => {
    polarLogout({
      ...base,
      server: 'sandbox',
      clientAuth: 'client_secret_basic',
      timeoutMs: 1500,
      retries: 0,
      redirectTo: 'https://app.example.com/bye',
      returnToParam: 'next',
      allowedRedirectOrigins: ['https://app.example.com', 'http://localhost:3000/'],
      onRevocationFailure: 'fail',
      onLogout: () => undefined,
      getTokens: () => ({}),
      cookieName: '__Host-sid',
      methods: ['POST', 'DELETE'],
    }).close();
  });

  it('validates createPolarRevoker the same way, rejecting middleware-only options', () => {
    expect(() => createPolarRevoker({ clientId: 'c' } as never)).toThrow(/`clientSecret` is required/);
    expect(() => createPolarRevoker({ ...base, redirectTo: '/' } as never)).toThrow(
      /`redirectTo` is not an option of createPolarRevoker\(\)/,
    );
    createPolarRevoker({ ...base, timeoutMs: 100, retries: 0 }).close();
  });

  it('keeps VERSION equal to package.json', () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    expect(VERSION).toBe((require('../package.json') as { version: string }).version);
  });
});
