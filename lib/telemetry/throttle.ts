/**
 * The `polar_logout.throttled` counter, for the rate budget: a call to Polar the budget held back (not sent, or
 * sent late). Defined now so dashboards can be built; the budget records through it when it lands.
 */
import type { TokenTypeHint } from '../types';
import { ATTR } from './names';
import { openTelemetry } from './otel';

export function recordThrottled(tokenType: TokenTypeHint): void {
  try {
    openTelemetry()
      ?.instruments()
      ?.throttled.add(1, { [ATTR.tokenType]: tokenType });
  } catch {
    // Telemetry never changes a call.
  }
}
