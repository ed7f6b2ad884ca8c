public import DICOMIngest
import Foundation
import Hummingbird
public import Logging
import NIOCore
public import Prometheus

/// Liveness and readiness endpoints for an orchestrator (Kubernetes probes), on the API server and on workers.
public enum Probes {
    public static let livenessPath = "/healthz"
    public static let readinessPath = "/readyz"
    static let paths: Set<String> = [livenessPath, readinessPath]

    static func response(ok: Bool, _ text: String) -> Response {
        Response(
            status: ok ? .ok : .serviceUnavailable, headers: [.contentType: "text/plain; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(string: text + "\n")))
    }

    /// A worker's probe server: `/healthz` fails when its heartbeat has not run for two leases (the process is
    /// wedged), `/readyz` when the catalog has not answered for a lease or the worker is stopping, and
    /// `/metrics` renders `registry` (the engine's counters and the queue depth, for autoscaling). Unauthenticated:
    /// listen where only the cluster reaches it.
    /// Serves `workerApplication` until the task is cancelled.
    public static func serve(
        worker: ImportWorker, registry: PrometheusCollectorRegistry, host: String, port: Int, logger: Logger
    ) async throws {
        try await workerApplication(worker: worker, registry: registry, host: host, port: port, logger: logger).run()
    }

    static func workerApplication(
        worker: ImportWorker, registry: PrometheusCollectorRegistry, host: String, port: Int, logger: Logger
    ) -> some ApplicationProtocol {
        let router = Router()
        let lease = worker.configuration.leaseSeconds
        router.get(RouterPath(livenessPath)) { _, _ in
            let age = Date().timeIntervalSince1970 - worker.health.heartbeatAt
            return response(ok: age < 2 * lease, age < 2 * lease ? "ok" : "heartbeat last ran \(Int(age)) s ago")
        }
        router.get(RouterPath(readinessPath)) { _, _ in
            let health = worker.health
            if health.stopping { return response(ok: false, "stopping") }
            let age = Date().timeIntervalSince1970 - health.catalogAnsweredAt
            guard age < lease else {
                return response(ok: false, "catalog has not answered for \(Int(age)) s: \(health.catalogError ?? "")")
            }
            return response(ok: true, "ready")
        }
        router.get("/metrics") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                body: .init(byteBuffer: ByteBuffer(bytes: registry.emitToBuffer())))
        }
        // The server's own logs stay quiet: its accept loop logs its cancellation, at the worker's every exit, as
        // an error. The address is logged here instead (with the port chosen when `port` is 0).
        var quiet = logger
        quiet.logLevel = .critical
        return Application(
            router: router, configuration: .init(address: .hostname(host, port: port), serverName: "dicom-ingest-worker"),
            onServerRunning: { channel in
                logger.info("probe server listening on \(host):\(channel.localAddress?.port ?? port)")
            },
            logger: quiet)
    }
}
