/**
 * The session cookie is cleared with the line Express itself writes (res.clearCookie), serialised once per set of
 * attributes and reused: every logout must still get the right line for its own attributes, after other cookies.
 */
import express, { type CookieOptions } from 'express';
import request from 'supertest';
import { createCookieClearer } from '../lib/teardown';

const VARIANTS: Record<string, CookieOptions> = {
  plain: { path: '/', httpOnly: true },
  strict: { path: '/', httpOnly: true, sameSite: 'strict', domain: 'example.test' },
  app: { path: '/app', httpOnly: true, secure: true, sameSite: 'none', partitioned: true, priority: 'high' },
};

function appWith(clear: ReturnType<typeof createCookieClearer>): express.Express {
  const app = express();
  app.get('/clear/:variant', (req, res) => {
    res.cookie('other', 'kept');
    clear(res, VARIANTS[req.params.variant]!);
    res.end();
  });
  app.get('/express/:variant', (req, res) => {
    res.cookie('other', 'kept');
    res.clearCookie('app.sid', VARIANTS[req.params.variant]);
    res.end();
  });
  return app;
}

it("writes Express's own line for each set of attributes, first and later alike, after the cookies already set", async () => {
  const app = appWith(createCookieClearer('app.sid'));
  const lines = async (path: string): Promise<string[]> =>
    (await request(app).get(path).expect(200)).headers['set-cookie'] as unknown as string[];

  for (const variant of ['plain', 'strict', 'plain', 'app', 'strict', 'app', 'plain']) {
    const ours = await lines(`/clear/${variant}`);
    const expressOwn = await lines(`/express/${variant}`);
    expect(ours).toEqual(expressOwn);
    expect(ours).toHaveLength(2);
    expect(ours[0]).toMatch(/^other=kept;/);
    expect(ours[1]).toMatch(/^app\.sid=; .*Expires=Thu, 01 Jan 1970 00:00:00 GMT/);
  }
  // The variants are told apart: each line carries its own attributes.
  expect((await lines('/clear/app'))[1]).toMatch(/Path=\/app;.*Secure; Partitioned; Priority=High; SameSite=None$/);
  expect((await lines('/clear/strict'))[1]).toMatch(/^app\.sid=; Domain=example\.test; Path=\/;.*SameSite=Strict$/);
});

it('forbids caching of the answer', async () => {
  const app = appWith(createCookieClearer('app.sid'));
  for (let i = 0; i < 2; i += 1) {
    const res = await request(app).get('/clear/plain').expect(200);
    expect(res.headers['cache-control']).toBe('no-store');
  }
});
