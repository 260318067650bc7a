/**
 * Figures for the summary table printed by summary-reporter.js. Every test that checks an expected figure
 * records it here (PASS/FAIL) and asserts it too, so a miss fails both the test and the run.
 */
import { appendFileSync } from 'node:fs';

export type FigureStatus = 'PASS' | 'FAIL' | 'INFO' | 'SKIP';

export interface FigureRow {
  section: string;
  figure: string;
  value: string;
  expected: string;
  status: FigureStatus;
}

function write(row: FigureRow): void {
  const file = process.env.RELIABILITY_FIGURES_FILE;
  if (file) appendFileSync(file, `${JSON.stringify(row)}\n`);
}

/** Records a figure with its expectation; returns whether it was met (assert on it). */
export function figure(section: string, name: string, value: string | number, expected: string, ok: boolean): boolean {
  write({ section, figure: name, value: String(value), expected, status: ok ? 'PASS' : 'FAIL' });
  return ok;
}

/** Records a measured figure without a pass/fail expectation. */
export function info(section: string, name: string, value: string | number, note = '(reported)'): void {
  write({ section, figure: name, value: String(value), expected: note, status: 'INFO' });
}

export function skipped(section: string, name: string, why: string): void {
  write({ section, figure: name, value: 'not run', expected: why, status: 'SKIP' });
}

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}
