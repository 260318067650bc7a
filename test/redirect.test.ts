import { safeRedirectTarget } from '../lib/redirect';

const allowed = new Set(['https://app.example.com', 'http://localhost:3000']);

describe('safeRedirectTarget', () => {
  it.each([
    ['/', '/'],
    ['/account/bye', '/account/bye'],
    ['/search?q=a%20b&x=%2F%2F', '/search?q=a%20b&x=%2F%2F'],
    ['/a/../b', '/b'],
    ['/path#frag', '/path#frag'],
    ['/é', '/%C3%A9'],
    ['https://app.example.com', 'https://app.example.com/'],
    ['https://APP.example.com/x?y=1', 'https://app.example.com/x?y=1'],
    ['http://localhost:3000/done', 'http://localhost:3000/done'],
    ['HTTPS://app.example.com/', 'https://app.example.com/'],
    // Unicode dots normalise to the allowlisted host; the normalised URL is what is sent.
    ['https://app.example。com/', 'https://app.example.com/'],
  ])('accepts %j as %j', (input, expected) => {
    expect(safeRedirectTarget(input, allowed)).toBe(expected);
  });

  it.each([
    '',
    '//evil.example',
    '///evil.example',
    '/\\evil.example',
    '\\\\evil.example',
    '/\t/evil.example',
    '/\n/evil.example',
    '/%09/evil.example',
    '/%2F/evil.example',
    '/%2f%2fevil.example',
    '/%252F%252Fevil.example',
    '/%5Cevil.example',
    '/%5cevil.example',
    '/%E0%A4%A', // malformed escape
    'https:evil.example',
    'https:/evil.example',
    'https://evil.example',
    'https://app.example.com.evil.example',
    'https://app.example.com@evil.example',
    'https://user:pw@app.example.com/',
    'http://app.example.com', // scheme differs from the allowlisted origin
    'https://app.example.com:444/',
    'javascript:alert(1)',
    'JaVaScRiPt:alert(1)',
    'data:text/html,<script>alert(1)</script>',
    'vbscript:msgbox',
    ' /x',
    '/x ',
    '/\u0000x',
    '/\u2028x',
    'evil.example',
    '/' + 'a'.repeat(2048),
  ])('refuses %j', (input) => {
    expect(safeRedirectTarget(input, allowed)).toBeUndefined();
  });

  it.each([[42], [null], [undefined], [['/x']], [{ toString: () => '/x' }]])('refuses non-strings (%j)', (input) => {
    expect(safeRedirectTarget(input, allowed)).toBeUndefined();
  });

  it('refuses every absolute URL when no origin is allowlisted', () => {
    expect(safeRedirectTarget('https://app.example.com/', new Set())).toBeUndefined();
  });
});
