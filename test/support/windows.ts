/** The largest number of events inside any window of `perMs` (times in ms, sorted ascending): what Polar would count. */
export function busiestWindow(times: readonly number[], perMs: number): number {
  let most = 0;
  let start = 0;
  for (let end = 0; end < times.length; end += 1) {
    while (times[end]! - times[start]! >= perMs) start += 1;
    most = Math.max(most, end - start + 1);
  }
  return most;
}
