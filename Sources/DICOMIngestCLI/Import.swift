import ArgumentParser
import DICOMIngest
import DICOMIngestModel
import DICOMIngestS3
import DICOMIngestSQL
import DICOMIngestSQLite
import Dispatch
import Foundation
import Logging
import Synchronization

extension DICOMIngestCommand {
    /// `dicom-ingest import <input> --output <output>`: StartDICOMImportJob, run to the end, on local prefixes.
    struct Import: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Import every object under a prefix into a data store, writing HealthImaging's job report.",
            discussion: """
                Writes <output>/<datastoreId>-DicomImport-<jobId>/ with job-output-manifest.json and
                SUCCESS/success.ndjson, FAILURE/failure.ndjson, WARNING/warning.ndjson. Exit status 0 when the job
                COMPLETED (even with per-file failures, as HealthImaging), 1 when it FAILED, 2-6 when the request
                was refused (see `CLIError`).
                """)

        @OptionGroup var options: StoreOptions

        @Argument(help: "Input prefix: s3://bucket/prefix/, or a local folder (or file) as a path or file:// URI.")
        var input: String?

        @Option(help: "Output prefix: s3://bucket/prefix/, or a local folder as a path or file:// URI.")
        var output: String?

        @Option(help: "Resume a job a stopped process left unfinished, or one that FAILED for a job-level reason (its input and output are the job's).")
        var resume: String?

        @Option(help: "S3 endpoint (default: AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, the profile's endpoint_url, AWS).")
        var endpointURL: String?

        @Option(help: "Data store ID (default: the only one in the store, created if there is none).")
        var datastoreId: String?

        @Option(help: "Job name ([A-Za-z0-9._/#-], 1-64).")
        var jobName: String?

        @Option(help: "Client token: repeating a token with the same parameters returns the same job, and resumes it when a stopped process left it unfinished.")
        var clientToken: String?

        @Option(help: "Data access role ARN recorded with the job.")
        var roleArn = "arn:aws:iam::000000000000:role/dicom-ingest-local"

        @OptionGroup var engineOptions: EngineOptions

        @Flag(help: "Print the summary as one JSON object.")
        var json = false

        @Flag(help: "Never print the progress line, even on a terminal.")
        var noProgress = false

        @Flag(help: "Only record the job, for worker processes sharing the PostgreSQL catalog (dicom-ingest worker) to run; prints its ID.")
        var submitOnly = false

        @Flag(help: "With --submit-only: wait until the workers have ended the job, then report it as a run here would.")
        var wait = false

        func validate() throws {
            if submitOnly && options.catalogURL() == nil {
                throw ValidationError("--submit-only needs a catalog workers share: --catalog postgres://… (or DICOM_INGEST_CATALOG)")
            }
            if wait && !submitOnly { throw ValidationError("--wait goes with --submit-only") }
            if submitOnly && resume != nil { throw ValidationError("--submit-only records a new job; workers resume theirs") }
            if resume != nil {
                guard input == nil, output == nil, clientToken == nil else {
                    throw ValidationError("--resume takes the job's own input and output: leave out <input>, --output and --client-token")
                }
                return
            }
            guard let input, let output else { throw ValidationError("give <input> and --output (or --resume <jobId>)") }
            for prefix in [input, output] where S3Location(uri: prefix) == nil && (try? LocalPrefix.uri(from: prefix)) == nil {
                throw ValidationError("unsupported prefix \(prefix): use s3://bucket/prefix, a local path or a file:// URI")
            }
        }

        func run() throws {
            _ = loggingConfigured
            let ran = try reportingErrors { () throws -> Ran in
                let store = try options.open()
                let datastore = try resolveDatastore(datastoreId, in: store, createIfNone: true)
                let frames = try options.frameStorage(for: store, endpointURL: endpointURL)
                let engine = ImportEngine(
                    store: store, frameStorage: frames, configuration: engineOptions.configuration(store: store))
                let io = CommandLineObjectIO(endpointURL: endpointURL)
                let job: DICOMImportJobProperties
                if let resume {
                    guard let found = try store.job(datastoreId: datastore, jobId: resume) else {
                        throw IngestServiceError.notFound("Job \(resume) does not exist in data store \(datastore)")
                    }
                    job = found
                } else {
                    let inputURI = S3Location(uri: input!) != nil ? input! : try LocalPrefix.uri(from: input!)
                    let outputURI = S3Location(uri: output!) != nil ? output! : try LocalPrefix.uri(from: output!, folder: true)
                    let request = StartDICOMImportJobRequest(
                        datastoreId: datastore, jobName: jobName, dataAccessRoleArn: roleArn,
                        clientToken: clientToken ?? UUID().uuidString, inputS3Uri: inputURI, outputS3Uri: outputURI)
                    job = try engine.submit(request, onWorkers: submitOnly)
                }
                if submitOnly {
                    return wait ? .ran(try waitForWorkers(job, store: store)) : .submitted(job)
                }
                guard job.jobStatus == .submitted || job.jobStatus == .inProgress || (resume != nil && job.jobStatus == .failed) else {
                    if resume != nil {
                        throw IngestServiceError.conflict("Job \(job.jobId) has already ended \(job.jobStatus.rawValue); there is nothing to resume")
                    }
                    // The token names a job that has ended: as StartDICOMImportJob, answer with that job.
                    return .endedBefore(job)
                }
                let inputURI = job.inputS3Uri
                let source = try io.source(for: inputURI)
                let total = Mutex<Int?>(nil)
                if source is LocalDirectorySource {
                    // A local listing is cheap enough to count ahead for the ETA; an S3 one is not.
                    DispatchQueue(label: "dicom-ingest.count").async {
                        var files = 0
                        try? source.forEachObject { _ in files += 1 }
                        total.withLock { $0 = files }
                    }
                }
                let progress = noProgress ? nil : ProgressLine.startIfTerminal { seconds in
                    let done = engine.progress(of: job.jobId) ?? ImportJobProgress()
                    var line = "\(done.scannedFiles) files  \(format(Double(done.scannedFiles) / seconds)) files/s  "
                        + "\(format(Double(done.bytesRead) / 1e6 / seconds)) MB/s  errors \(done.failures)"
                    if let total = total.withLock({ $0 }), done.scannedFiles > 0 {
                        let remaining = Double(max(0, total - done.scannedFiles)) / (Double(done.scannedFiles) / seconds)
                        line += "  of \(total)  ETA \(format(remaining)) s"
                    }
                    return line
                }
                defer { progress?.stop() }
                let outcome = try engine.run(job, reopeningFailed: resume != nil, source: source) { job in
                    try io.sink(for: job.outputS3Uri, datastoreId: job.datastoreId, jobId: job.jobId)
                }
                reclaimFramePacks(store, frames: frames, logger: Logger(label: "dicom-ingest"))
                return .ran(outcome)
            }
            switch ran {
            case .ran(let outcome):
                report(outcome)
                if outcome.job.jobStatus != .completed { throw ExitCode(1) }
            case .submitted(let job):
                if json {
                    printJSON(.object([("jobId", .string(job.jobId)), ("datastoreId", .string(job.datastoreId)), ("jobStatus", .string(job.jobStatus.rawValue))]))
                } else {
                    FileHandle.standardOutput.write(Data("job \(job.jobId) \(job.jobStatus.rawValue) in data store \(job.datastoreId) (for workers)\n".utf8))
                }
            case .endedBefore(let job):
                FileHandle.standardOutput.write(Data(
                    "job \(job.jobId) \(job.jobStatus.rawValue) in data store \(job.datastoreId) (ended before: the client token was used already)\n".utf8))
                if job.jobStatus != .completed { throw ExitCode(1) }
            }
        }

        enum Ran {
            case ran(ImportOutcome)
            case submitted(DICOMImportJobProperties)
            case endedBefore(DICOMImportJobProperties)
        }

        /// Polls the job until the workers end it; its outcome is the job record's.
        func waitForWorkers(_ submitted: DICOMImportJobProperties, store: any SQLBackedImageSetStore) throws -> ImportOutcome {
            var job = submitted
            while job.jobStatus == .submitted || job.jobStatus == .inProgress {
                Thread.sleep(forTimeInterval: 0.25)
                guard let current = try store.job(datastoreId: job.datastoreId, jobId: job.jobId) else {
                    throw IngestServiceError.notFound("Job \(job.jobId) no longer exists")
                }
                job = current
            }
            var folder = job.outputS3Uri
            if !folder.hasSuffix("/") { folder += "/" }
            return ImportOutcome(ended: job, jobFolderURI: folder + JobOutputFolder.name(datastoreId: job.datastoreId, jobId: job.jobId) + "/")
        }

        func report(_ outcome: ImportOutcome) {
            let folder = outcome.jobFolderURI.map { $0.hasPrefix("file://") ? (URL(string: $0)?.path ?? $0) : $0 } ?? ""
            if json {
                var members: [(String, JSONValue)] = [
                    ("jobId", .string(outcome.job.jobId)), ("datastoreId", .string(outcome.job.datastoreId)),
                    ("jobStatus", .string(outcome.job.jobStatus.rawValue)),
                    ("numberOfScannedFiles", .int(Int64(outcome.scannedFiles))),
                    ("numberOfImportedFiles", .int(Int64(outcome.importedFiles))),
                    ("numberOfFilesWithCustomerError", .int(Int64(outcome.customerErrors))),
                    ("numberOfFilesWithServerError", .int(Int64(outcome.serverErrors))),
                    ("numberOfGeneratedImageSets", .int(Int64(outcome.generatedImageSets))),
                    ("jobOutputFolder", .string(folder)), ("seconds", .double(outcome.seconds)),
                ]
                if let message = outcome.job.message { members.append(("message", .string(message))) }
                printJSON(.object(members))
                return
            }
            var text = """
                job \(outcome.job.jobId) \(outcome.job.jobStatus.rawValue) in data store \(outcome.job.datastoreId)
                files \(outcome.scannedFiles)  imported \(outcome.importedFiles)  customer errors \(outcome.customerErrors)  \
                server errors \(outcome.serverErrors)  image sets \(outcome.generatedImageSets)  \
                \(format(Double(outcome.scannedFiles) / max(outcome.seconds, 1e-9))) files/s  \
                \(format(Double(outcome.bytes) / 1e6 / max(outcome.seconds, 1e-9))) MB/s  \(format(outcome.seconds)) s
                report: \(folder)

                """
            if let message = outcome.job.message { text += "message: \(message)\n" }
            FileHandle.standardOutput.write(Data(text.utf8))
        }
    }
}
