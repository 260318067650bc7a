// @ts-check
'use strict';
/**
 * `GET /metrics`: express-polar-logout's OpenTelemetry metrics (logouts, revocation requests, outbox depth and
 * settlements) in Prometheus' text format, through the OpenTelemetry Prometheus exporter's request handler on the
 * app's own port (no second server). One MeterProvider per process, registered before polarLogout() and the outbox
 * are built. In production, keep this endpoint off the public internet (a separate port, or the proxy refuses it).
 */

/** @type {import('@opentelemetry/exporter-prometheus').PrometheusExporter | null | undefined} */
let exporter;

/**
 * Registers the SDK once; null when the OpenTelemetry packages are not installed (then /metrics says so).
 * @returns {import('@opentelemetry/exporter-prometheus').PrometheusExporter | null}
 */
function startMetrics() {
  if (exporter !== undefined) return exporter;
  try {
    const { metrics } = require('@opentelemetry/api');
    const { MeterProvider } = require('@opentelemetry/sdk-metrics');
    const { PrometheusExporter } = require('@opentelemetry/exporter-prometheus');
    const prometheus = new PrometheusExporter({ preventServerStart: true });
    metrics.setGlobalMeterProvider(new MeterProvider({ readers: [prometheus] }));
    exporter = prometheus;
  } catch {
    exporter = null;
  }
  return exporter;
}

/** @type {import('express').RequestHandler} */
function metricsHandler(req, res) {
  const prometheus = startMetrics();
  if (!prometheus) {
    res
      .status(404)
      .type('text/plain')
      .send('Metrics need @opentelemetry/api, @opentelemetry/sdk-metrics and @opentelemetry/exporter-prometheus.\n');
    return;
  }
  prometheus.getMetricsRequestHandler(req, res);
}

module.exports = { startMetrics, metricsHandler };
