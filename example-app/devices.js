// @ts-check
'use strict';
/**
 * A short readable name for a User-Agent ("Chrome on Linux"), for the "Your sessions" page. A guess from well-known
 * tokens, good enough to tell one's own devices apart; no library, no version numbers, no fingerprinting. The
 * result is plain text (the page escapes it).
 */

/** First match wins: Edge and Opera also say Chrome, Chrome also says Safari. */
const BROWSERS = /** @type {const} */ ([
  [/\bEdg(?:e|A|iOS)?\//, 'Edge'],
  [/\b(?:OPR|Opera)\//, 'Opera'],
  [/\bSamsungBrowser\//, 'Samsung Internet'],
  [/\b(?:Firefox|FxiOS)\//, 'Firefox'],
  [/\bHeadlessChrome\//, 'Headless Chrome'],
  [/\b(?:Chrome|CriOS|Chromium)\//, 'Chrome'],
  [/\bVersion\/[\d.]+.*\bSafari\//, 'Safari'],
]);

/** First match wins: Android also says Linux, iOS also says Mac OS X. */
const SYSTEMS = /** @type {const} */ ([
  [/\bWindows\b/, 'Windows'],
  [/\b(?:iPhone|iPad|iPod)\b/, 'iOS'],
  [/\bAndroid\b/, 'Android'],
  [/\bCrOS\b/, 'ChromeOS'],
  [/\bMac OS X\b|\bMacintosh\b/, 'macOS'],
  [/\bLinux\b/, 'Linux'],
]);

/**
 * @param {string | undefined} userAgent
 * @returns {string} e.g. "Chrome on Linux", "Firefox", "curl", or "Unknown device"
 */
function describeDevice(userAgent) {
  if (!userAgent) return 'Unknown device';
  const browser = BROWSERS.find(([pattern]) => pattern.test(userAgent))?.[1];
  const system = SYSTEMS.find(([pattern]) => pattern.test(userAgent))?.[1];
  if (browser) return system ? `${browser} on ${system}` : browser;
  // Not a browser (curl/8.5.0, node, a script): the first product name, kept short.
  const product = /^[A-Za-z][\w.-]{0,31}/.exec(userAgent)?.[0];
  if (product && product !== 'Mozilla') return system ? `${product} on ${system}` : product;
  return system ? `A browser on ${system}` : 'Unknown device';
}

module.exports = { describeDevice };
