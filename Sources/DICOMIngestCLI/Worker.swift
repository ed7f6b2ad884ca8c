import ArgumentParser
import DICOMIngest
import DICOMIngestServer
import DICOMIngestSQL
import Dispatch
import Foundation
import Logging
import Prometheus

extension DICOMIngestCommand {
    /// `dicom-ingest worker`: takes work from every job submitted for workers in a PostgreSQL catalog.
    struct Worker: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run imports submitted for workers (serve --submit-only, import --submit-only), with any number of other workers.",
            discussion: """
                A stateless process: it claims the listing of a job's input, chunks of its objects and the job's final
                commit from the catalog, each under a lease its heartbeat extends; a worker that dies loses its
                leases and another takes its work over. Every worker of a catalog needs the same --catalog, the same
                --frames (an S3 prefix, when workers run on several machines) and access to the jobs' input and
                output prefixes. SIGTERM or SIGINT stops it gracefully: what is in hand is staged and its chunk
                released. Probes: GET /healthz, /readyz and /metrics on --probe-host:--probe-port.
                """)

        @OptionGroup var options: StoreOptions
        @OptionGroup var engineOptions: EngineOptions

        @Option(help: "S3 endpoint for s3:// prefixes and frames (default: the AWS environment).") var endpointURL: String?
        @Option(help: "This worker's name in leases and logs (default: host name/process ID).") var workerId: String?
        @Option(help: "Seconds a claim lasts without a heartbeat: how soon a dead worker's work is taken over (default: 30).")
        var leaseSeconds: Double = ImportWorker.Configuration.defaultLeaseSeconds
        @Option(help: "Seconds between looks for work when there is none (default: 1).") var pollSeconds: Double = 1
        @Option(help: "Objects per chunk when this worker lists a job's input (default: 256).")
        var chunkObjects = ImportWorker.Configuration.defaultChunkObjects
        @Option(help: "Address of the probe and metrics server.") var probeHost = "127.0.0.1"
        @Option(help: "Port of the probe and metrics server (0: any free port, printed at start; -1: none).") var probePort = 9090
        @Flag(help: "Exit once no job submitted for workers is left (for a one-off batch, a Kubernetes Job).")
        var exitWhenIdle = false

        func validate() throws {
            guard options.catalogURL() != nil else {
                throw ValidationError("worker needs a shared catalog: --catalog postgres://… (or DICOM_INGEST_CATALOG)")
            }
            guard leaseSeconds >= 1 else { throw ValidationError("--lease-seconds must be at least 1") }
            guard pollSeconds > 0 else { throw ValidationError("--poll-seconds must be positive") }
            guard chunkObjects >= 1 else { throw ValidationError("--chunk-objects must be at least 1") }
        }

        func run() async throws {
            _ = loggingConfigured
            let (store, _, registry, engine) = try engineOptions.serviceEngine(options, endpointURL: endpointURL)
            var logger = Logger(label: "dicom-ingest.worker")
            // A worker's life (claims, chunks, stops) is what its operators read: info unless told otherwise.
            logger.logLevel = configuredLogLevel(default: .info)
            let worker = ImportWorker(
                engine: engine, queue: store.catalog, io: CommandLineObjectIO(endpointURL: endpointURL),
                configuration: ImportWorker.Configuration(
                    workerId: workerId, leaseSeconds: leaseSeconds, pollSeconds: pollSeconds, chunkObjects: chunkObjects,
                    exitWhenIdle: exitWhenIdle, logger: logger))
            let signals = StopSignals { worker.stop() }
            defer { signals.cancel() }
            logger.info("worker started", metadata: ["worker": .string(worker.configuration.workerId)])
            try await withThrowingTaskGroup(of: Void.self) { group in
                if probePort >= 0 {
                    let (host, port, probeLogger) = (probeHost, probePort, logger)
                    group.addTask {
                        try await Probes.serve(worker: worker, registry: registry, host: host, port: port, logger: probeLogger)
                    }
                }
                group.addTask {
                    await withCheckedContinuation { continuation in
                        DispatchQueue(label: "dicom-ingest.worker.run").async {
                            worker.run()
                            continuation.resume()
                        }
                    }
                }
                // The worker's task ends first (a stop, or idle); the probe server is then cancelled.
                try await group.next()
                group.cancelAll()
            }
        }
    }
}

/// Calls `stop` on SIGTERM or SIGINT (once each), instead of the default of ending the process.
final class StopSignals {
    private let sources: [any DispatchSourceSignal]

    init(_ stop: @escaping @Sendable () -> Void) {
        sources = [SIGTERM, SIGINT].map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler(handler: stop)
            source.resume()
            return source
        }
    }

    func cancel() {
        for source in sources { source.cancel() }
    }
}
