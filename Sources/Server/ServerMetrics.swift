import Metrics
import Prometheus

/// The process's metrics: swift-prometheus is bootstrapped as the swift-metrics backend, so the
/// engine's `hifc_` instruments and the server's HTTP ones land in one registry that `/metrics`
/// renders as Prometheus text.
public enum ServerMetrics {
    /// The registry behind the swift-metrics backend; bootstrapped on first use, once per process.
    public static let registry: PrometheusCollectorRegistry = {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        // CPU generation of a long answer takes many seconds; the default buckets stop at 10 s.
        factory.defaultDurationHistogramBuckets = [
            .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
            .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5),
            .seconds(10), .seconds(30), .seconds(60), .seconds(120), .seconds(300),
        ]
        MetricsSystem.bootstrap(factory)
        return registry
    }()

    /// Makes sure the backend is in place before any instrument is made (the engine's included).
    public static func bootstrap() { _ = registry }

    /// The metrics in Prometheus text format.
    public static func render() -> String { registry.emitToString() }
}

/// The server's own instruments: HTTP requests, latency, time to first token, disconnects.
struct HTTPMetrics: Sendable {
    init() { ServerMetrics.bootstrap() }

    /// Counts an answered request by endpoint and HTTP status.
    func recordRequest(endpoint: String, status: Int) {
        Counter(label: "hifc_http_requests_total", dimensions: [("endpoint", endpoint), ("status", String(status))]).increment()
    }

    /// Records the time from a generation request's arrival to its last token.
    func recordLatency(endpoint: String, seconds: Double) {
        Metrics.Timer(label: "hifc_http_request_duration_seconds", dimensions: [("endpoint", endpoint)]).recordSeconds(seconds)
    }

    /// Records the time from a request's arrival to its first generated token.
    func recordTimeToFirstToken(endpoint: String, seconds: Double) {
        Metrics.Timer(label: "hifc_http_time_to_first_token_seconds", dimensions: [("endpoint", endpoint)]).recordSeconds(seconds)
    }

    /// Counts a generation aborted because its client went away.
    func recordClientDisconnect(endpoint: String) {
        Counter(label: "hifc_http_client_disconnects_total", dimensions: [("endpoint", endpoint)]).increment()
    }

    /// Requests being generated now.
    var inFlight: Meter { Meter(label: "hifc_http_requests_in_flight") }
}
