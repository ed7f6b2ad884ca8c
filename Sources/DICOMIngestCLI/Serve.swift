import ArgumentParser
import DICOMIngest
import DICOMIngestServer
import DICOMIngestSQL
import DICOMIngestSQLite
import Foundation
import Logging
import Prometheus

extension EngineOptions {
    /// What `serve` and `worker` run on: the store, its frame store, and an engine whose metrics go to a
    /// Prometheus registry (their `/metrics`).
    func serviceEngine(
        _ options: StoreOptions, endpointURL: String?
    ) throws -> (store: any SQLBackedImageSetStore, frames: any FrameStorage, registry: PrometheusCollectorRegistry, engine: ImportEngine) {
        let store = try options.open()
        let registry = PrometheusCollectorRegistry()
        let frames = try options.frameStorage(for: store, endpointURL: endpointURL)
        let engine = ImportEngine(
            store: store, frameStorage: frames,
            configuration: configuration(store: store, metrics: IngestService.metricsFactory(for: registry)))
        return (store, frames, registry, engine)
    }
}

extension DICOMIngestCommand {
    /// `dicom-ingest serve`: the HealthImaging-compatible HTTP API.
    struct Serve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Serve the AWS HealthImaging API (StartDICOMImportJob and friends) for the AWS SDKs and CLI.",
            discussion: """
                Callers sign requests with SigV4 (service medical-imaging). By default the server accepts the one
                identity in its own environment (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY) and, listening on loopback
                without --config, any role it passes on S3 prefixes; --config names identities, the roles each may pass
                and what those roles may read and write. Jobs left unfinished by a stop
                are resumed at start. Clients must turn off host-prefix injection (boto3:
                Config(inject_host_prefix=False), or AWS_DISABLE_HOST_PREFIX_INJECTION=true).
                """)

        @OptionGroup var options: StoreOptions
        @OptionGroup var engineOptions: EngineOptions

        @Option(help: "Address to listen on.") var host = "127.0.0.1"
        @Option(help: "Port to listen on (0: any free port, printed at start).") var port = 8080
        @Option(help: "JSON configuration file (identities, roles, limits).") var config: String?
        @Option(help: "S3 endpoint for s3:// prefixes (default: the AWS environment).") var endpointURL: String?
        @Flag(help: "Accept unsigned requests (local experiments only).") var noAuth = false
        @Flag(help: "Only record the jobs this server accepts; worker processes sharing its PostgreSQL catalog run them (dicom-ingest worker).")
        var submitOnly = false

        func validate() throws {
            if submitOnly && options.catalogURL() == nil {
                throw ValidationError("--submit-only needs a catalog workers share: --catalog postgres://… (or DICOM_INGEST_CATALOG)")
            }
        }

        func run() async throws {
            _ = loggingConfigured
            var configuration: ServerConfiguration
            if let config {
                let base = ServerConfiguration(
                    host: host, port: port,
                    identities: noAuth ? [:] : ServerConfiguration.environmentIdentities(ProcessInfo.processInfo.environment))
                configuration = try ServerConfiguration.load(path: config, base: base)
            } else {
                configuration = ServerConfiguration.zeroConfiguration(
                    host: host, port: port, environment: noAuth ? [:] : ProcessInfo.processInfo.environment)
            }
            if configuration.identities.isEmpty && !noAuth {
                throw ValidationError("no identity to accept: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, pass --config, or --no-auth")
            }
            let (store, frames, registry, engine) = try engineOptions.serviceEngine(options, endpointURL: endpointURL)
            var logger = Logger(label: "dicom-ingest.server")
            logger.logLevel = .info
            var runner: JobRunner?
            if !submitOnly {
                runner = JobRunner(engine: engine, io: CommandLineObjectIO(endpointURL: endpointURL)) { [logger] in
                    reclaimFramePacks(store, frames: frames, logger: logger)
                }
            }
            reclaimFramePacks(store, frames: frames, objectStore: true, logger: logger)
            if let resumed = try runner?.resumeUnfinishedJobs(), !resumed.isEmpty {
                logger.info("resumed unfinished import jobs", metadata: ["jobs": .string(resumed.joined(separator: ","))])
            }
            let service = IngestService(configuration: configuration, engine: engine, runner: runner, registry: registry)
            try await service.prepare()
            try await runServer(service: service, logger: logger)
        }
    }
}
