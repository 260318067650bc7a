/**
 * Prints the figures the reliability suite recorded (support/figures.ts) as one table at the end of the run,
 * and fails the run (getLastError) when a figure missed its expected value or when none were recorded.
 */
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

class SummaryReporter {
  constructor() {
    this.file = path.join(os.tmpdir(), `epl-reliability-${process.pid}-${Date.now()}.jsonl`);
    fs.writeFileSync(this.file, '');
    // Read by support/figures.ts in the test files (same process with --runInBand; inherited by workers otherwise).
    process.env.RELIABILITY_FIGURES_FILE = this.file;
    this.error = undefined;
  }

  onRunComplete(_contexts, results) {
    let rows = [];
    try {
      rows = fs
        .readFileSync(this.file, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line));
      fs.unlinkSync(this.file);
    } catch {
      // no file: no figures
    }
    const header = { section: 'Section', figure: 'Figure', value: 'Value', expected: 'Expected', status: 'Result' };
    const cols = ['section', 'figure', 'value', 'expected', 'status'];
    const width = Object.fromEntries(
      cols.map((c) => [c, Math.max(...[header, ...rows].map((r) => String(r[c]).length))]),
    );
    const line = (r) => `| ${cols.map((c) => String(r[c]).padEnd(width[c])).join(' | ')} |`;
    const rule = `|${cols.map((c) => '-'.repeat(width[c] + 2)).join('|')}|`;
    const seconds = ((Date.now() - results.startTime) / 1000).toFixed(1);
    const failed = rows.filter((r) => r.status === 'FAIL');
    const out = [
      '',
      'express-polar-logout reliability summary',
      line(header),
      rule,
      ...rows.map(line),
      '',
      `figures: ${rows.length}, missed: ${failed.length}, tests failed: ${results.numFailedTests}, ` +
        `suites failed: ${results.numFailedTestSuites}, total ${seconds} s`,
      '',
    ];
    process.stdout.write(out.join('\n'));
    if (rows.length === 0) this.error = new Error('the reliability suite recorded no figures');
    else if (failed.length > 0) {
      this.error = new Error(`missed figures: ${failed.map((r) => `${r.section} / ${r.figure}`).join('; ')}`);
    }
  }

  getLastError() {
    return this.error;
  }
}

module.exports = SummaryReporter;
