// @ts-check
'use strict';
/**
 * The example's HTML. No script, no inline style: the Content-Security-Policy forbids both. Every value
 * interpolated through `html` is escaped unless it is itself `html`.
 */

class SafeHtml {
  /** @param {string} value */
  constructor(value) {
    this.value = value;
  }
  toString() {
    return this.value;
  }
}

/** @param {unknown} value */
function escapeHtml(value) {
  return String(value).replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] ?? c,
  );
}

/** @param {unknown} value @returns {string} */
function fragment(value) {
  if (value instanceof SafeHtml) return value.value;
  if (Array.isArray(value)) return value.map(fragment).join('');
  if (value === undefined || value === null || value === false) return '';
  return escapeHtml(value);
}

/**
 * @param {TemplateStringsArray} strings
 * @param {unknown[]} values
 */
function html(strings, ...values) {
  let out = strings[0] ?? '';
  values.forEach((value, i) => {
    out += fragment(value) + (strings[i + 1] ?? '');
  });
  return new SafeHtml(out);
}

/**
 * @param {{ title: string, body: SafeHtml, polarLabel: string }} page
 */
function layout({ title, body, polarLabel }) {
  return html`<!doctype html>
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>${title} · express-polar-logout example</title>
        <link rel="stylesheet" href="/style.css" />
        <link rel="icon" href="/favicon.svg" type="image/svg+xml" />
      </head>
      <body>
        <header>
          <a class="brand" href="/">express-polar-logout example</a>
          <nav><a href="/">Home</a> <a href="/audit">Audit log</a></nav>
        </header>
        <main>${body}</main>
        <footer>Polar: ${polarLabel}</footer>
      </body>
    </html> `;
}

/** @param {{ polarLabel: string }} context */
function homeSignedOut({ polarLabel }) {
  return layout({
    title: 'Welcome',
    polarLabel,
    body: html`<h1>Welcome</h1>
      <p>You are not signed in.</p>
      <p><a class="button primary" href="/login">Sign in with Polar</a></p>`,
  });
}

/**
 * @param {{ polarLabel: string, user: import('./polar-oauth').PolarUser, expiresAt: number | undefined }} context
 */
function homeSignedIn({ polarLabel, user, expiresAt }) {
  return layout({
    title: 'Signed in',
    polarLabel,
    body: html`<h1>Hello, ${user.name ?? user.email ?? 'Polar user'}</h1>
      <p class="status" id="signed-in">You are signed in with Polar.</p>
      <dl>
        <dt>Name</dt>
        <dd>${user.name ?? '(not shared)'}</dd>
        <dt>Email</dt>
        <dd>${user.email ?? '(not shared)'}</dd>
        <dt>Polar user id</dt>
        <dd><code>${user.sub}</code></dd>
        ${
          expiresAt
            ? html`<dt>Access token expires</dt>
                <dd>${new Date(expiresAt).toISOString()}</dd>`
            : ''
        }
      </dl>
      <form method="post" action="/logout">
        <button type="submit" class="button">Sign out</button>
      </form>
      <p class="hint">
        Signing out revokes your Polar access and refresh tokens, destroys the session and clears its cookie.
      </p>
      <p>
        <a href="/sessions" id="your-sessions">Your sessions</a>: where else you are signed in, and signing them out.
      </p>`,
  });
}

/** @param {Date} at @returns {SafeHtml} e.g. 2025-06-01 14:03 UTC, in a <time> element */
function minuteTime(at) {
  const iso = at.toISOString();
  return html`<time datetime="${iso}">${iso.slice(0, 10)} ${iso.slice(11, 16)} UTC</time>`;
}

/**
 * One row per session of the user. Each row names its session by the registry's handle only (in the form's
 * action): never a session id, token or user id.
 * @param {{
 *   polarLabel: string,
 *   sessions: readonly import('express-polar-logout').SessionInfo[],
 *   current: string | undefined,
 *   describeDevice: (userAgent: string | undefined) => string,
 * }} context
 */
function sessionsPage({ polarLabel, sessions, current, describeDevice }) {
  const rows = sessions.map((s) => {
    const here = s.id === current;
    return html`<tr class="${here ? 'current' : 'other'}">
      <td class="device">${describeDevice(s.userAgent)}</td>
      <td>${minuteTime(s.createdAt)}</td>
      <td>${minuteTime(s.lastSeenAt)}</td>
      <td>
        ${
          here
            ? html`<span class="this-device">This device</span>`
            : html`<form method="post" action="/sessions/${encodeURIComponent(s.id)}/logout">
                <button type="submit" class="button small">Sign out this device</button>
              </form>`
        }
      </td>
    </tr>`;
  });
  return layout({
    title: 'Your sessions',
    polarLabel,
    body: html`<h1>Your sessions</h1>
      <p>
        Everywhere you are signed in with this Polar account. Signing a session out revokes its Polar tokens and ends it
        at once, on every instance of this app.
      </p>
      <table id="sessions">
        <thead>
          <tr>
            <th>Device</th>
            <th>Signed in (UTC)</th>
            <th>Last seen (UTC)</th>
            <th></th>
          </tr>
        </thead>
        <tbody>
          ${rows}
        </tbody>
      </table>
      <p class="hint">"Last seen" is updated at most once a minute.</p>
      <div class="actions">
        <form method="post" action="/logout/others">
          <button type="submit" class="button">Sign out everywhere else</button>
        </form>
        <form method="post" action="/logout/everywhere">
          <button type="submit" class="button danger">Sign out everywhere</button>
        </form>
      </div>
      <p><a href="/">Back to the home page</a></p>`,
  });
}

/** @param {{ polarLabel: string }} context */
function signedOut({ polarLabel }) {
  return layout({
    title: 'Signed out',
    polarLabel,
    body: html`<h1>You are signed out</h1>
      <p class="status" id="signed-out">Your session is gone and its cookie cleared.</p>
      <p>The <a href="/audit">audit log</a> shows what happened to your Polar tokens.</p>
      <p><a class="button primary" href="/login">Sign in with Polar</a></p>`,
  });
}

/** @param {{ code: string, httpStatus?: number } | undefined} error */
function errorText(error) {
  return error ? `${error.code}${error.httpStatus ? ` ${error.httpStatus}` : ''}` : '';
}

/** @param {import('express-polar-logout').TokenOutcome} outcome */
function outcomeCell(outcome) {
  const detail = outcome.error ? ` (${errorText(outcome.error)})` : '';
  // queued: handed to the revocation outbox, which keeps trying (see "Queued revocations" below).
  const queued = outcome.queued === undefined ? '' : outcome.queued ? ', queued' : ', not queued (outbox unavailable)';
  return html`<td class="${outcome.queued ? 'queued' : outcome.status}">${outcome.status}${detail}${queued}</td>`;
}

/**
 * What a logout did to the user's sessions: this one, the others ('others'), or all of them ('everywhere').
 * @param {import('express-polar-logout').LogoutEvent} e
 */
function resultCell(e) {
  const ended = e.sessions ? ` (${e.sessions.sessions} session(s) ended)` : '';
  if (e.scope === 'others') {
    return e.error
      ? html`<td class="failed">others not signed out (${e.error.code})</td>`
      : html`<td class="revoked">signed out everywhere else${ended}</td>`;
  }
  if (!e.loggedOut) return html`<td class="failed">not signed out (${e.error?.code ?? 'unknown'})</td>`;
  return html`<td class="revoked">${e.scope === 'everywhere' ? `signed out everywhere${ended}` : 'signed out'}</td>`;
}

/** @param {import('express-polar-logout').OutboxCounts | undefined} counts */
function pendingText(counts) {
  if (!counts) return 'The outbox did not answer: its Redis may be unreachable.';
  const pending = counts.waiting + counts.delayed + counts.active;
  if (pending === 0) return 'No token waiting.';
  return `${pending} token(s) not revoked yet: ${counts.active} being revoked, ${counts.delayed} waiting to retry, ${counts.waiting} due now.`;
}

/**
 * @param {{
 *   polarLabel: string,
 *   events: readonly import('express-polar-logout').LogoutEvent[],
 *   settled: readonly import('express-polar-logout').OutboxSettledEvent[],
 *   outbox: { description: string, counts: import('express-polar-logout').OutboxCounts | undefined },
 *   limit: number,
 * }} context
 */
function audit({ polarLabel, events, settled, outbox, limit }) {
  const rows = events.map(
    (e) =>
      html`<tr>
        <td><time datetime="${e.at}">${e.at}</time></td>
        ${resultCell(e)} ${outcomeCell(e.revocation.accessToken)} ${outcomeCell(e.revocation.refreshToken)}
        <td>${e.sessionDestroyed ? 'yes' : 'no'}</td>
        <td>${e.durationMs} ms</td>
        <td><code>${e.sessionIdHash ?? '-'}</code></td>
      </tr>`,
  );
  return layout({
    title: 'Audit log',
    polarLabel,
    body: html`<h1>Audit log</h1>
      <p>
        The last ${limit} logout events recorded by the <code>onLogout</code> hook, newest first. They hold no token and
        no session id, only a hash of it. This page is public because this is an example; protect it in a real app.
      </p>
      ${
        events.length === 0
          ? html`<p id="no-events">No logout yet.</p>`
          : html`<table id="events">
              <thead>
                <tr>
                  <th>When (UTC)</th>
                  <th>Result</th>
                  <th>Access token</th>
                  <th>Refresh token</th>
                  <th>Session destroyed</th>
                  <th>Took</th>
                  <th>Session (hash)</th>
                </tr>
              </thead>
              <tbody>
                ${rows}
              </tbody>
            </table>`
      }
      <h2>Queued revocations</h2>
      <p>
        When Polar cannot be reached at logout, the user is signed out anyway and the token goes to the revocation
        outbox (${outbox.description}), which keeps revoking it. The last ${limit} outcomes recorded by its
        <code>onSettled</code> hook, newest first. <span id="pending">${pendingText(outbox.counts)}</span>
      </p>
      ${
        settled.length === 0
          ? html`<p id="no-settled">No queued token settled yet.</p>`
          : html`<table id="settled">
              <thead>
                <tr>
                  <th>Settled (UTC)</th>
                  <th>Token</th>
                  <th>Outcome</th>
                  <th>Attempts</th>
                  <th>Queued (UTC)</th>
                  <th>Error</th>
                  <th>Session (hash)</th>
                </tr>
              </thead>
              <tbody>
                ${settled.map(
                  (e) =>
                    html`<tr>
                      <td><time datetime="${e.settledAt}">${e.settledAt}</time></td>
                      <td>${e.tokenType === 'access_token' ? 'access' : 'refresh'}</td>
                      <td class="${e.outcome === 'revoked' ? 'revoked' : 'failed'}">${e.outcome}</td>
                      <td>${e.attempts}</td>
                      <td><time datetime="${e.queuedAt}">${e.queuedAt}</time></td>
                      <td>${errorText(e.error) || '-'}</td>
                      <td><code>${e.sessionIdHash ?? '-'}</code></td>
                    </tr>`,
                )}
              </tbody>
            </table>`
      }`,
  });
}

/**
 * @param {{ polarLabel: string, title: string, message: string }} context
 */
function errorPage({ polarLabel, title, message }) {
  return layout({
    title,
    polarLabel,
    body: html`<h1>${title}</h1>
      <p>${message}</p>
      <p><a href="/">Back to the home page</a></p>`,
  });
}

module.exports = {
  html,
  escapeHtml,
  SafeHtml,
  homeSignedOut,
  homeSignedIn,
  sessionsPage,
  signedOut,
  audit,
  errorPage,
};
