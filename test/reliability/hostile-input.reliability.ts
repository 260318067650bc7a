/**
 * Hostile input: open-redirect payloads by query and by form body, a property test of the redirect
 * validator, logout CSRF, and odd session contents. None may leave the allowed origins, cause a side
 * effect when refused, or crash the process.
 */
import express, { type ErrorRequestHandler } from 'express';
import session from 'express-session';
import request from 'supertest';
import fc from 'fast-check';
import { polarLogout, type PolarLogoutHandler } from '../../lib';
import { safeRedirectTarget } from '../../lib/redirect';
import { startFakePolar } from '../../lib/testing';
import { cookieHeader, createHarness, type Harness } from '../support/harness';
import { figure } from './support/figures';
import { trackUnhandled } from './support/process';

const SECTION_REDIRECT = 'Open redirect';
const SECTION_CSRF = 'Logout CSRF';
const SECTION_ODD = 'Odd sessions';

const ALLOWED = 'https://app.example.com';
/** An origin allowed to ask for a logout (trustedOrigins); ALLOWED only receives users. */
const TRUSTED = 'https://portal.example.com';
const FALLBACK = '/signed-out';
/** Where the browser is when it follows the Location header (any origin works: only "same or allowed" matters). */
const BASES = ['https://site.test/logout', 'http://127.0.0.1:3000/a/b/logout?x=1'];
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL_OR_BACKSLASH = /[\u0000-\u001f\u007f-\u009f\\]/;

/** Where a browser lands when it follows `location` from each base: only the base's own origin or ALLOWED. */
function offSite(location: string): string | undefined {
  if (CONTROL_OR_BACKSLASH.test(location)) return `raw control or backslash in ${JSON.stringify(location)}`;
  for (const base of BASES) {
    let origin: string;
    try {
      origin = new URL(location, base).origin;
    } catch {
      return `unparseable ${JSON.stringify(location)}`;
    }
    if (origin !== new URL(base).origin && origin !== ALLOWED) return `${JSON.stringify(location)} lands on ${origin}`;
  }
  return undefined;
}

const unhandled = trackUnhandled();
afterAll(() => unhandled.stop());

// ---------------------------------------------------------------------------------------------------------
// Open redirects
// ---------------------------------------------------------------------------------------------------------

/** Payloads that must fall back to FALLBACK. */
const HOSTILE: readonly string[] = [
  // protocol-relative and slash/backslash mixes
  '//evil.example',
  '///evil.example',
  '////evil.example/',
  '/\\evil.example',
  '\\\\evil.example',
  '\\/evil.example',
  '/\\/evil.example',
  '\t//evil.example',
  // dot segments that collapse into "//host" once normalised
  '/..//evil.example',
  '/.//evil.example',
  '/a/..//evil.example',
  '/%2e%2e//evil.example',
  '/%2E//evil.example/x',
  // absolute URLs elsewhere, with mixed-case schemes or none of the slashes
  'https://evil.example',
  'HTTPS://EVIL.EXAMPLE/',
  'hTtP://evil.example',
  'https:evil.example',
  'https:/evil.example',
  'https:\\\\evil.example',
  'http://app.example.com',
  'https://app.example.com:8443/',
  // script and data schemes
  'javascript:alert(document.cookie)',
  'JaVaScRiPt:alert(1)',
  ' javascript:alert(1)',
  'java\tscript:alert(1)',
  'data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==',
  'vbscript:msgbox(1)',
  // userinfo and delimiter tricks
  'https://app.example.com@evil.example',
  'https://app.example.com:@evil.example/',
  'https://app.example.com%2F@evil.example',
  'https://evil.example\\@app.example.com',
  'https://evil.example#@app.example.com',
  'https://evil.example?@app.example.com',
  'https://user:pass@app.example.com/',
  // percent- and double-encoding
  '%2F%2Fevil.example',
  '/%2F%2Fevil.example',
  '/%2f/evil.example',
  '/%5Cevil.example',
  '/%5c%5cevil.example',
  '/%252F%252Fevil.example',
  '/%25252F%25252Fevil.example',
  '/%E0%A4%A',
  // tabs, newlines, separators
  '/\t/evil.example',
  '/\n/evil.example',
  '/\r\n/evil.example',
  '/\u2028/evil.example',
  '\u2028//evil.example',
  '/ /evil.example',
  // Unicode dots, fullwidth and lookalike hosts
  'https://evil\u3002example',
  '//evil\u3002example',
  '//\uff45\uff56\uff49\uff4c.example',
  'https://app.example.com\u3002evil.example',
  'https://\u0430pp.example.com/',
  'https://app.example.com.evil.example',
  'https://app-example.com',
  'https://app.example.co',
  // over-long values
  `/${'a'.repeat(5000)}`,
  `${ALLOWED}/${'a'.repeat(3000)}`,
];

/** Payloads that must be honoured exactly as given (positive controls: the test can tell honoured from refused). */
const HONOURED: ReadonlyArray<readonly [string, string]> = [
  ['/account/bye', '/account/bye'],
  ['/search?q=%2F%2Fevil.example#top', '/search?q=%2F%2Fevil.example#top'],
  [`${ALLOWED}/bye`, `${ALLOWED}/bye`],
  ['HTTPS://APP.example.com/x', `${ALLOWED}/x`],
];

describe('open redirects', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness({ logout: { redirectTo: FALLBACK, allowedRedirectOrigins: [ALLOWED] } });
  });
  afterAll(() => h.close());

  const transports = {
    query: (target: string) => h.post(undefined, `/logout?returnTo=${encodeURIComponent(target)}`),
    'form body': (target: string) => h.post().type('form').send({ returnTo: target }),
  } as const;

  it(`keeps ${HOSTILE.length} hostile returnTo payloads on site, by query and by form body`, async () => {
    const problems: string[] = [];
    let sent = 0;
    for (const [transport, send] of Object.entries(transports)) {
      for (const target of HOSTILE) {
        const res = await send(target);
        sent += 1;
        const location = String(res.headers.location);
        if (res.status !== 303) problems.push(`${transport} ${JSON.stringify(target)}: status ${res.status}`);
        const off = offSite(location);
        if (off) problems.push(`${transport} ${JSON.stringify(target)}: ${off}`);
        else if (location !== FALLBACK)
          problems.push(`${transport} ${JSON.stringify(target)}: honoured as ${location}`);
      }
    }
    figure(
      SECTION_REDIRECT,
      'hostile payloads (query + form body)',
      `${sent - problems.length}/${sent} fell back on site`,
      `${sent}/${sent}, >= 80`,
      problems.length === 0 && sent >= 80,
    );
    expect(problems).toEqual([]);
  });

  it('honours the legitimate targets among them (the check can tell)', async () => {
    const problems: string[] = [];
    for (const [transport, send] of Object.entries(transports)) {
      for (const [target, expected] of HONOURED) {
        const location = (await send(target)).headers.location;
        if (location !== expected) problems.push(`${transport} ${target}: ${location}`);
      }
    }
    expect(problems).toEqual([]);
  });

  it('never returns an off-site target (fast-check property of safeRedirectTarget)', () => {
    const allowed = new Set([ALLOWED, 'http://localhost:3000']);
    const isSafe = (value: string): boolean => {
      const result = safeRedirectTarget(value, allowed);
      if (result === undefined) return true;
      for (const base of BASES) {
        const origin = new URL(result, base).origin;
        if (origin !== new URL(base).origin && !allowed.has(origin)) return false;
      }
      if (CONTROL_OR_BACKSLASH.test(result) || /^\/[/\\]/.test(result)) return false;
      // What a proxy that decodes the path would forward must stay on site too.
      if (result.startsWith('/')) {
        let decoded = result;
        for (let i = 0; i < 3; i += 1) {
          try {
            decoded = decodeURIComponent(decoded);
          } catch {
            break;
          }
          const path = decoded.split(/[?#]/, 1)[0]!;
          // eslint-disable-next-line no-control-regex -- matching control characters is the point
          if (/^\/[/\\]/.test(path) || /[\u0000-\u001f\\]/.test(path)) return false;
          // ...and once its dot segments are resolved ("/.//x" is "//x").
          if (new URL(path, 'http://placeholder.test').pathname.startsWith('//')) return false;
        }
      }
      // A target it accepted is accepted again unchanged.
      return safeRedirectTarget(result, allowed) === result;
    };

    const piece = fc.constantFrom(
      '/',
      '//',
      '\\',
      '/\\',
      '\\/',
      '.',
      '..',
      '/./',
      '/../',
      '/.',
      '/..',
      '%2F',
      '%2f',
      '%5C',
      '%5c',
      '%2e',
      '%2E%2E',
      '%252F',
      '%25',
      '%',
      '%0a',
      '%09',
      '%00',
      '\t',
      '\n',
      '\r',
      ' ',
      '\u0000',
      '\u3002',
      '\uff0e',
      '\uff0f',
      '\u2215',
      '\u2044',
      '\uff3c',
      '\u200b',
      '\ufeff',
      '\u2028',
      '\u00a0',
      '@',
      ':',
      '?',
      '#',
      ';',
      '&',
      '=',
      'http:',
      'https:',
      'HTTPS:',
      'hTtP:',
      'javascript:',
      'data:',
      'file:',
      'blob:',
      'evil.example',
      'app.example.com',
      'localhost',
      ':3000',
      ':443',
      '127.0.0.1',
      '0x7f.1',
      '[::1]',
      'xn--pp-5cd.example.com',
      '\u0430',
      'user:pass@',
      'a',
      'x',
    );
    // Random concatenations of the pieces above, sometimes URL-encoded once or twice, sometimes mixed-case.
    const adversarial = fc
      .tuple(fc.array(piece, { minLength: 1, maxLength: 12 }), fc.constantFrom(0, 0, 0, 1, 2), fc.boolean())
      .map(([parts, encodings, upper]) => {
        let s = parts.join('');
        if (upper) s = s.toUpperCase();
        if (encodings >= 1) s = s.replace(/[/\\.]/g, (c) => ({ '/': '%2F', '\\': '%5C', '.': '%2E' })[c]!);
        if (encodings >= 2) s = encodeURIComponent(s);
        return s;
      });
    // Structured URLs: scheme, slashes, userinfo, host, port and path drawn from hostile sets.
    const structured = fc
      .tuple(
        fc.constantFrom('', 'https:', 'http:', 'HTTPS:', 'javascript:', 'https:/', '/'),
        fc.constantFrom('', '/', '//', '///', '\\\\', '/\\', '\\/', '%2F%2F', '\t//'),
        fc.constantFrom('', 'user@', 'app.example.com@', 'a:b@', 'app.example.com%40'),
        fc.constantFrom(
          'evil.example',
          'app.example.com',
          'app.example.com.evil.example',
          'app\u3002example\u3002com',
          'localhost',
          'ev\u0130l.example',
        ),
        fc.constantFrom('', ':3000', ':443', ':80', ':8443'),
        fc.string({
          unit: fc.constantFrom('/', '\\', '.', '%', '2', 'F', 'e', '@', '?', '#', 'a', '\t', '\u3002'),
          maxLength: 12,
        }),
      )
      .map((parts) => parts.join(''));
    const properties: ReadonlyArray<readonly [string, fc.Arbitrary<string>, number]> = [
      ['adversarial concatenations', adversarial, 20_000],
      ['structured URLs', structured, 10_000],
      ['random unicode paths', fc.string({ unit: 'binary', maxLength: 64 }).map((s) => `/${s}`), 10_000],
      ['random unicode strings', fc.string({ unit: 'binary', maxLength: 64 }), 5_000],
      ['web URLs', fc.webUrl({ withQueryParameters: true, withFragments: true }), 5_000],
    ];
    const failures: string[] = [];
    for (const [name, arbitrary, numRuns] of properties) {
      const details = fc.check(fc.property(arbitrary, isSafe), { numRuns });
      if (details.failed)
        failures.push(`${name}: ${JSON.stringify(details.counterexample?.[0])} (seed ${details.seed})`);
    }
    const total = properties.reduce((sum, [, , runs]) => sum + runs, 0);
    figure(
      SECTION_REDIRECT,
      'fast-check: targets generated / properties failed',
      `${total} / ${failures.length}`,
      '>= 40000 / 0',
      failures.length === 0,
    );
    expect(failures).toEqual([]);
  });

  it('refuses the dot-segment bypass (/..//host) found by this suite', () => {
    // Regression test: normalisation turned "/..//evil.example" into "//evil.example".
    for (const target of [
      '/..//evil.example',
      '/.//evil.example',
      '/a/b/../..//evil.example',
      '/%2e%2e//evil.example',
      '/./%2f/evil.example',
      '/.%2f/evil.example',
      '/./%2f%2E%2E',
    ]) {
      expect(safeRedirectTarget(target, new Set([ALLOWED]))).toBeUndefined();
    }
    expect(safeRedirectTarget('/a/../b', new Set())).toBe('/b');
  });
});

// ---------------------------------------------------------------------------------------------------------
// Logout CSRF
// ---------------------------------------------------------------------------------------------------------

describe('logout CSRF', () => {
  it('refuses cross-site requests and other methods with no side effect, when mounted with app.use', async () => {
    const h = await createHarness({
      mount: 'use',
      logout: { allowedRedirectOrigins: [ALLOWED], trustedOrigins: [TRUSTED] },
    });
    try {
      const { tokens, sessionId, cookie } = await h.login();
      const host = 'logout.test';
      const hostile: ReadonlyArray<readonly [string, number, (t: request.Test) => request.Test]> = [
        ['POST Sec-Fetch-Site: cross-site', 403, (t) => t.set('Sec-Fetch-Site', 'cross-site')],
        ['POST Origin: https://evil.example', 403, (t) => t.set('Origin', 'https://evil.example')],
        ['POST Origin: null', 403, (t) => t.set('Origin', 'null')],
        ['POST Origin: lookalike host', 403, (t) => t.set('Origin', `http://${host}.evil.example`)],
        ['POST Origin: own host, other port', 403, (t) => t.set('Origin', `http://${host}:8080`)],
        ['POST Origin: own host with userinfo', 403, (t) => t.set('Origin', `http://evil@${host}`)],
        ['POST Origin: trusted host over http', 403, (t) => t.set('Origin', 'http://portal.example.com')],
        [
          'POST Origin: a redirect target, not trusted',
          403,
          (t) => t.set({ Origin: ALLOWED, 'Sec-Fetch-Site': 'cross-site' }),
        ],
        [
          'POST Origin: foreign + Sec-Fetch-Site: same-origin',
          403,
          (t) => t.set({ Origin: 'https://evil.example', 'Sec-Fetch-Site': 'same-origin' }),
        ],
        [
          'POST form, Origin: foreign, Referer: own',
          403,
          (t) =>
            t
              .type('form')
              .send('x=1')
              .set({ Origin: 'https://evil.example', Referer: `http://${host}/` }),
        ],
      ];
      const methods: ReadonlyArray<readonly [string, number]> = [
        ['GET', 405],
        ['HEAD', 405],
        ['PUT', 405],
        ['DELETE', 405],
        ['PATCH', 405],
        ['OPTIONS', 405],
      ];
      const problems: string[] = [];
      const sideEffects = async (label: string, res: request.Response, expected: number): Promise<void> => {
        if (res.status !== expected) problems.push(`${label}: status ${res.status}, expected ${expected}`);
        if (expected === 405 && res.headers.allow !== 'POST') problems.push(`${label}: Allow ${res.headers.allow}`);
        if (cookieHeader(res).length > 0) problems.push(`${label}: Set-Cookie`);
        if ((await h.sessionIds()).join() !== sessionId) problems.push(`${label}: session touched`);
        if (h.fake.calls.length > 0 || !h.fake.isActive(tokens.refreshToken)) problems.push(`${label}: Polar called`);
        if (h.events.length > 0) problems.push(`${label}: audited as a logout`);
      };
      for (const [label, expected, decorate] of hostile) {
        await sideEffects(label, await decorate(h.post(cookie).set('Host', host)), expected);
      }
      for (const [method, expected] of methods) {
        const agent = request(h.app) as unknown as Record<string, (path: string) => request.Test>;
        const res = await agent[method.toLowerCase()]!('/logout').set({
          Cookie: cookie,
          Host: host,
          Origin: `http://${host}`,
        });
        await sideEffects(method, res, expected);
      }
      const refused = hostile.length + methods.length;
      figure(
        SECTION_CSRF,
        'refused requests with a side effect',
        `${problems.length} of ${refused}`,
        '0 (403 cross-site, 405 methods)',
        problems.length === 0,
      );
      expect(problems).toEqual([]);

      // Positive control: the same request from the site itself does log out.
      await h
        .post(cookie)
        .set({ Host: host, Origin: `http://${host}`, 'Sec-Fetch-Site': 'same-origin' })
        .expect(303);
      expect(await h.sessionIds()).toEqual([]);
      expect(h.fake.isActive(tokens.refreshToken)).toBe(false);
      // And from the trusted origin, cross-site.
      const second = await h.login();
      await h.post(second.cookie).set({ Host: host, Origin: TRUSTED, 'Sec-Fetch-Site': 'cross-site' }).expect(303);
      expect(await h.sessionIds()).toEqual([]);
    } finally {
      await h.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------------------
// Odd session contents
// ---------------------------------------------------------------------------------------------------------

describe('odd session contents', () => {
  it('treats non-token values as absent, sends real strings exactly, and always destroys the session', async () => {
    const h = await createHarness();
    try {
      const injection = 'tok&token=other&client_id=evil&token_type_hint=refresh_token';
      const cases: ReadonlyArray<readonly [string, unknown, string | undefined]> = [
        ['a number', 42, undefined],
        ['zero', 0, undefined],
        ['true', true, undefined],
        ['null', null, undefined],
        ['an object', { token: 'x' }, undefined],
        ['an array', ['polar_at_x'], undefined],
        ['a nested array', [['x']], undefined],
        ['an empty string', '', undefined],
        ['8192 characters (the limit)', 'k'.repeat(8192), 'k'.repeat(8192)],
        ['8193 characters', 'k'.repeat(8193), undefined],
        ['1 MB', 'k'.repeat(1 << 20), undefined],
        ['form-injection characters', injection, injection],
        ['unicode and spaces', 'tök€n with spaces+plus', 'tök€n with spaces+plus'],
      ];
      const problems: string[] = [];
      for (const slot of ['accessToken', 'refreshToken'] as const) {
        const hint = slot === 'accessToken' ? 'access_token' : 'refresh_token';
        for (const [label, value, sent] of cases) {
          h.fake.resetCalls();
          h.events.length = 0;
          const { cookie } = await h.login({ [slot]: value, user: 'odd' });
          const res = await h.post(cookie);
          const calls = h.fake.calls;
          const prefix = `${slot} = ${label}`;
          if (res.status !== 303) problems.push(`${prefix}: status ${res.status}`);
          if ((await h.sessionIds()).length !== 0) problems.push(`${prefix}: session kept`);
          const outcome = h.events[0]?.revocation[slot].status;
          if (sent === undefined) {
            if (calls.length !== 0) problems.push(`${prefix}: ${calls.length} calls to Polar`);
            if (outcome !== 'absent') problems.push(`${prefix}: outcome ${outcome}`);
          } else {
            const call = calls[0];
            if (calls.length !== 1 || call?.token !== sent || call.hint !== hint)
              problems.push(`${prefix}: Polar got ${JSON.stringify(call?.token?.slice(0, 40))}`);
            if (call && call.fields.sort().join() !== 'client_id,client_secret,token,token_type_hint')
              problems.push(`${prefix}: fields ${call.fields.join()}`);
            if (call && !call.authenticated) problems.push(`${prefix}: credentials overridden`);
            if (outcome !== 'revoked') problems.push(`${prefix}: outcome ${outcome}`);
          }
        }
      }
      const total = cases.length * 2;
      figure(
        SECTION_ODD,
        'odd token values handled',
        `${total - problems.length}/${total}`,
        `${total}/${total}`,
        problems.length === 0,
      );
      expect(problems).toEqual([]);
    } finally {
      await h.close();
    }
  });

  it('answers a clear error, never a crash, when there is no usable session', async () => {
    const fake = await startFakePolar();
    const handlers: PolarLogoutHandler[] = [];
    const errors: Array<{ label: string; code?: string; status?: number }> = [];
    const makeApp = (label: string, setup: (app: express.Express) => void): express.Express => {
      const app = express();
      setup(app);
      const logout = polarLogout({ clientId: fake.clientId, clientSecret: fake.clientSecret, baseUrl: fake.url });
      handlers.push(logout);
      app.post('/logout', logout);
      const onError: ErrorRequestHandler = (err: { code?: string; status?: number }, _req, res, _next) => {
        errors.push({ label, code: err.code, status: err.status });
        res.status(err.status ?? 500).json({ error: err.code });
      };
      app.use(onError);
      return app;
    };
    class DisconnectedStore extends session.MemoryStore {}
    const disconnected = new DisconnectedStore();
    const apps: ReadonlyArray<readonly [string, express.Express, number, string]> = [
      ['no express-session', makeApp('none', () => undefined), 500, 'SESSION_UNAVAILABLE'],
      [
        'a plain-object session (cookie-session style)',
        makeApp('plain', (app) =>
          app.use((req, _res, next) => {
            (req as unknown as { session: unknown }).session = { accessToken: 'a', refreshToken: 'r' };
            next();
          }),
        ),
        500,
        'SESSION_UNAVAILABLE',
      ],
      [
        'req.session = null',
        makeApp('null', (app) =>
          app.use((req, _res, next) => {
            (req as unknown as { session: unknown }).session = null;
            next();
          }),
        ),
        500,
        'SESSION_UNAVAILABLE',
      ],
      [
        'a store that is disconnected',
        makeApp('disconnected', (app) => {
          app.use(session({ secret: 's', resave: false, saveUninitialized: false, store: disconnected }));
          disconnected.emit('disconnect');
        }),
        500,
        'SESSION_UNAVAILABLE',
      ],
      [
        'a destroy() that throws',
        makeApp('throws', (app) =>
          app.use((req, _res, next) => {
            (req as unknown as { session: unknown }).session = {
              destroy: () => {
                throw new Error('store bug');
              },
            };
            next();
          }),
        ),
        500,
        'SESSION_DESTROY_FAILED',
      ],
      [
        'a destroy() that calls back twice',
        makeApp('twice', (app) =>
          app.use((req, _res, next) => {
            (req as unknown as { session: unknown }).session = {
              destroy: (cb: (e?: unknown) => void) => {
                cb();
                cb(new Error('again'));
              },
            };
            next();
          }),
        ),
        303,
        '',
      ],
      [
        'getTokens() throwing a string',
        (() => {
          const app = express();
          app.use(session({ secret: 's', resave: false, saveUninitialized: false }));
          const logout = polarLogout({
            clientId: fake.clientId,
            clientSecret: fake.clientSecret,
            baseUrl: fake.url,
            getTokens: () => {
              // eslint-disable-next-line @typescript-eslint/only-throw-error -- a hook that throws a non-Error is the case under test
              throw 'nope';
            },
          });
          handlers.push(logout);
          app.post('/logout', logout);
          app.use(((err: { code?: string; status?: number }, _req, res, _next) => {
            errors.push({ label: 'getTokens', code: err.code, status: err.status });
            res.status(err.status ?? 500).json({ error: err.code });
          }) as ErrorRequestHandler);
          return app;
        })(),
        500,
        'GET_TOKENS_FAILED',
      ],
    ];
    const problems: string[] = [];
    try {
      for (const [label, app, status, code] of apps) {
        const res = await request(app).post('/logout');
        if (res.status !== status) problems.push(`${label}: status ${res.status}, expected ${status}`);
        if (code && (res.body as { error?: string }).error !== code) problems.push(`${label}: ${res.text}`);
      }
      expect(fake.calls).toHaveLength(0);
    } finally {
      handlers.forEach((h) => h.close());
      await fake.close();
    }
    figure(
      SECTION_ODD,
      'sessions without destroy(): clear error codes',
      `${apps.length - problems.length}/${apps.length}`,
      `${apps.length}/${apps.length}, process alive`,
      problems.length === 0,
    );
    expect(problems).toEqual([]);
  });

  it('raised no unhandled rejection or uncaught exception in this file', () => {
    figure(
      SECTION_ODD,
      'unhandled rejections / uncaught exceptions (hostile input)',
      unhandled.count,
      '0',
      unhandled.count === 0,
    );
    expect(unhandled.descriptions).toEqual([]);
  });
});
